"""``bench/deep_budget.py`` reads a deep-bench run back from the run store: its rows, calls, prunes and
refines must be the bench report's own numbers (scripted LLMs and sandbox, as in test_bench.py)."""

from __future__ import annotations

from bdc_assistant.deep.bench import run_bench
from bdc_assistant.deep.providers.presets import parse_agent

from ..bench_scripts import bench_script
from .conftest import make_runner
from .scripted_sandbox import ScriptedSandbox
from .test_bench import PROBLEM


def test_the_run_store_gives_back_each_rows_calls_prunes_and_refines(server, store) -> None:
    runner = make_runner(store, [server.url])
    agents = [parse_agent(f"openai:{server.url}:model-{c}") for c in "ab"]
    report = run_bench(runner, [PROBLEM], agents, max_calls=12, budget_usd=0, sandbox=ScriptedSandbox())
    analysis = bench_script("deep_budget").budget_analysis(store.path, 0.0, float("inf"), None)
    assert set(analysis) == set(report["methods"])
    for name, m in report["methods"].items():
        row = analysis[name]
        assert row["problems"] == 1, name
        assert row["calls"] == m["calls"], name  # no S* here: every call is a search call
        assert sum(v for k, v in row.items() if k.startswith("calls@")) == m["calls"], name
        assert sum(v for k, v in row.items() if k.startswith("phase:")) == m["calls"], name
        assert (row["pruned"], row["refines"]) == (m["pruned"], m["refined"]), name
        assert row["runs"] == m["attempts_per_problem"], name
    # the two-agent refine is written by the other agent; the single-agent one cannot be
    assert analysis["mc-toa+prune+refine"]["refines_by_other_agent"] == 1
    assert analysis["single[openai:model-a]"]["refines_by_other_agent"] == 0
    assert analysis["mc-toa+prune+refine"]["calls@openai:model-a"] > 0
    assert analysis["mc-toa+prune+refine"]["calls@openai:model-b"] > 0
    # a window that ends before the run sees nothing
    assert bench_script("deep_budget").budget_analysis(store.path, 0.0, 1.0, None) == {}


def test_a_bad_report_or_run_store_is_one_sentence_and_exit_2(tmp_path, capsys) -> None:
    main = bench_script("deep_budget").main
    bad = tmp_path / "bad.json"
    bad.write_text('{"methods": {}}')
    assert main(["--since", "0", "--report", str(bad), "--db", str(tmp_path / "none.db")]) == 2
    assert "is not a deep-bench report with per-problem ids" in capsys.readouterr().err
    assert main(["--since", "0", "--db", str(tmp_path / "none.db")]) == 2
    assert "cannot read the run store" in capsys.readouterr().err
