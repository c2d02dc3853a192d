"""Pure parts of the TUI: code blocks, mixture drawing, trainer-line parsing, settings writing, deep tree."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from bdc_assistant.deep import events as ev
from bdc_assistant.errors import ConfigError
from bdc_assistant.tui import mixture
from bdc_assistant.tui.codeblocks import fence
from bdc_assistant.tui.deep_adapter import DeepTracker
from bdc_assistant.tui.screens.retrain import comparison_rows, parse_progress, parse_result
from bdc_assistant.tui.settings_io import save_settings
from bdc_assistant.types import Gates
from tests.tui.fakes import fake_gates


def test_a_fence_is_longer_than_any_backtick_run_in_the_code() -> None:
    assert fence("a = 1\n") == "```python\na = 1\n```"
    assert fence("s = '```'") == "````python\ns = '```'\n````"


def test_mixture_bars_heatmap_and_nearest() -> None:
    g = fake_gates()
    assert mixture.nearest_clusters(g)[0] == ("greedy", 0.81)
    bars = mixture.bars(g, width=10).plain.splitlines()
    assert len(bars) == 3 and bars[0].startswith("greedy") and bars[1].endswith(f"{g.expert_means()[1]:+.3f}")
    # the largest mean gets the full width
    biggest = max(range(3), key=lambda k: g.expert_means()[k])
    assert bars[biggest].count("█") == 10
    heat = mixture.heatmap(g, max_cols=12).plain.splitlines()
    assert len(heat) == len(g.values) and heat[0].startswith("L0")
    assert heat[0].count("█") == g.n_experts * g.rank
    assert mixture.heatmap(g, max_cols=40).plain.splitlines()[0].count("█") == 3 * g.n_experts * g.rank
    wide = Gates(tuple((0.5,) * 64 for _ in range(2)), n_experts=2, rank=32)
    assert mixture.heatmap(wide, max_cols=16).plain.splitlines()[0].count("█") == 16
    anon = Gates(((1.0, 0.0),), n_experts=2, rank=1)
    assert mixture.expert_names(anon) == ["expert 0", "expert 1"] and mixture.nearest_clusters(anon) == []


def test_trainer_progress_and_result_parsing() -> None:
    assert parse_progress("epoch 3/10 loss 0.2") == (3, 10)
    assert parse_progress('{"step": 4, "total": 8}') == (4, 8)
    assert parse_progress("loaded 12 files") is None
    assert parse_progress("5/0") is None
    lines = [
        '{"step": 1, "total": 2}',
        '{"bundle": "b2", "current": {"pass@1": 0.1}, "new": {"pass@1": 0.25}}',
    ]
    result = parse_result(lines)
    assert result is not None and result["bundle"] == "b2"
    assert comparison_rows(result) == [("pass@1", "0.100", "0.250")]
    assert parse_result(["nothing json"]) is None


def test_settings_are_merged_validated_and_atomic(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[solver]\nmax_tokens = 99\n[tui]\ntheme = "dark"\n')
    save_settings(path, {"tui": {"theme": "light"}, "backend": {"threads": 3}})
    data = tomllib.loads(path.read_text())
    assert data == {"solver": {"max_tokens": 99}, "tui": {"theme": "light"}, "backend": {"threads": 3}}
    before = path.read_text()
    with pytest.raises(ConfigError, match=r"backend\.threads"):
        save_settings(path, {"backend": {"threads": -1}})
    with pytest.raises(ConfigError, match="Unknown settings section"):
        save_settings(path, {"nope": {}})
    assert path.read_text() == before
    path.write_text("not [toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        save_settings(path, {"tui": {"theme": "light"}})


def test_deep_tracker_folds_events_into_a_tree() -> None:
    tr = DeepTracker(max_calls=10, budget_usd=1.0)
    tr.apply(ev.RunStarted("r1", "p", ("a",)))
    tr.apply(ev.NodeAdded(0, None, "", None, 1.0, 0))
    tr.apply(ev.NodeAdded(1, 0, "plan   A\nline", "openai", 0.5, 1))
    tr.apply(ev.NodeSimulated(1, 0.5, 0.5, 2, False, 1))
    tr.apply(ev.NodePruned(1, 0.0, 0.5, 1))
    tr.apply(ev.NodeRefined(1, 2, "c", "a", "s", 1))
    tr.apply(ev.Spend("openai", "simulate", 3, 1, 1, 0.02, False))
    snap = tr.apply(ev.Finished("r1", "max_calls", 0.5, {"best_code": "print(1)"}))
    nodes = {n.id: n for n in snap.nodes}
    assert nodes["1"].label == "openai: plan A line" and nodes["1"].parent == "0"
    assert nodes["1"].pruned and nodes["1"].refined and nodes["2"].refined
    assert (snap.calls, snap.spend_usd, snap.best_pr, snap.tokens) == (3, 0.02, 0.5, 2)
    assert snap.done and snap.stop_reason == "max_calls" and snap.best_code == "print(1)"
    assert snap.run_id == "r1"


def test_progress_line_shows_calls_tokens_and_dollars_spent_of_their_budgets() -> None:
    from bdc_assistant.tui.screens.deep import progress_line

    tr = DeepTracker(max_calls=8, budget_usd=0.5, max_tokens=20_000, method="reflexion")
    tr.apply(ev.Spend("a", "solve", 1, 900, 300, 0.01, False))
    snap = tr.apply(ev.Spend("a", "reflect", 2, 1500, 700, 0.02, False))  # the meter is cumulative
    line = progress_line(snap)
    assert line.startswith("reflexion · ")
    assert "calls 2/8" in line and "tokens 2,200/20,000" in line and "spend $0.0200/$0.50" in line
    assert "tokens 0/∞" in progress_line(DeepTracker().snapshot())


def test_merge_tokens_merges_same_kind_runs_and_keeps_order() -> None:
    from bdc_assistant.tui.chat import merge_tokens
    from bdc_assistant.types import CodeToken, StageDone, ThoughtToken

    evs = [
        ThoughtToken("a"),
        ThoughtToken("b"),
        StageDone("thought", "ab", 2, 0.1),
        CodeToken("x"),
        CodeToken("y"),
    ]
    assert merge_tokens(evs) == [ThoughtToken("ab"), StageDone("thought", "ab", 2, 0.1), CodeToken("xy")]
    assert merge_tokens([]) == []


def test_bars_truncate_long_cluster_names() -> None:
    g = Gates(((0.5, 0.25),), n_experts=2, rank=1, cluster_names=("dynamic programming on trees", "io"))
    lines = mixture.bars(g, width=8, name_width=6).plain.splitlines()
    assert lines[0].startswith("dynam… ") and lines[1].startswith("io     ")


def test_clipboard_tries_native_tool_then_always_osc52(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from bdc_assistant.tui.clipboard import copy_text

    out = tmp_path / "clip.txt"
    tool = tmp_path / "xclip"
    tool.write_text(
        f"#!{sys.executable}\nimport sys\nopen({str(out)!r}, 'wb').write(sys.stdin.buffer.read())\n"
    )
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    sent: list[str] = []
    result = copy_text("def f():\n    return 1\n", sent.append)
    assert result.method == "xclip" and out.read_text() == "def f():\n    return 1\n"
    assert sent == ["def f():\n    return 1\n"]  # OSC 52 too: it is what reaches the terminal over SSH
    tool.write_text("#!/bin/sh\nexit 1\n")  # a broken native tool falls back to OSC 52 alone
    assert copy_text("x", sent.append).method == "osc52" and sent[-1] == "x"
    assert copy_text("y", sent.append, native=False).method == "osc52"


def test_plan_markdown_drops_empty_numbered_steps() -> None:
    from bdc_assistant.tui.chat import plan_markdown

    assert plan_markdown("1. Read n.\n2.\n3. \n4) \n5. Print it.") == "1. Read n.\n5. Print it."
    assert plan_markdown("1.\n2.\n") == "_(no plan)_"
