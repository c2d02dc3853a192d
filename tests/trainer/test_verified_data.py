"""Wrong code never reaches training: deep-mode negatives are never training pairs, the default keeps only
programs that pass every public test, and the reference-solution bootstrap keeps its own label."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from bdc_assistant.deep.exports import export_run
from bdc_assistant.deep.search import PublicProblem, Search, SearchConfig
from bdc_assistant.errors import DatasetError
from bdc_assistant.store.runs import RunStore
from bdc_assistant.types import TestCase
from tests.deep.fakes import MarkerEvaluator, ScriptedTeam
from trainer import data
from trainer.__main__ import main as trainer
from trainer.config import load_config
from trainer.pairs import build_pairs

# root PR .75 · rollout 1: A1.0 (A 1.0, B 0.0: mean .5) is ill although one program passes · rollout 2:
# B1.0 (.75) stays open with no passing program · rollout 3: its child A2.0 (A 1.0, B 0.5) passes
RATES = {"": {"A": 0.75, "B": 0.75}, "A1.0": {"A": 1.0, "B": 0.0}, "B1.0": {"A": 0.75, "B": 0.75}}
RATES["A2.0"] = {"A": 1.0, "B": 0.5}
CONFIG = SearchConfig(rollouts=3, width=2, prune=True, refine=False, early_stop=False)


def _stored_search(store: RunStore, problem: PublicProblem) -> str:
    """A real search (scripted policies, marker evaluator) stored in the SQLite store as a finished run."""
    team = ScriptedTeam(names=("A", "B"), scores={"A": [3.0, 1.0], "B": [1.0, 1.0]}, rates=RATES)
    out = Search(problem, team, MarkerEvaluator(), CONFIG).run()
    statuses = {n.thoughts: n.status for n in out.tree.nodes.values() if n.simulated}
    assert statuses == {(): "open", ("A1.0",): "ill", ("B1.0",): "open", ("B1.0", "A2.0"): "open"}
    run_id = f"run-{problem.id}"
    store.create_run(run_id, asdict(problem), {"search": asdict(CONFIG)}, [])
    tree = out.tree.to_json()
    store.finish(
        run_id, status="finished", stopped_by=out.stopped_by, result={}, tree=tree, meter={}, events=[]
    )
    return run_id


def _deep_exports(out: Path) -> list[dict]:
    """Two deep runs exported *with* negatives into ``out`` (two problems: the data stage wants ≥ 2 records)."""
    out.mkdir()
    store = RunStore()
    try:
        for pid in ("p1", "p2"):
            tests = (TestCase("1 2", "3", origin="user"),)
            run_id = _stored_search(store, PublicProblem(pid, f"add two numbers ({pid})", tests))
            export_run(store, run_id, "jsonl", out / "", include_negatives=True)
    finally:
        store.close()
    return [json.loads(line) for f in sorted(out.glob("*.jsonl")) for line in f.read_text().splitlines()]


@pytest.mark.parametrize("min_rate", ["1.0", "0.0"], ids=["default_threshold", "threshold_zero"])
def test_trainer_data_trains_on_the_passing_program_never_the_failing_ones(
    tmp_path: Path, min_rate: str
) -> None:
    lines = _deep_exports(tmp_path / "exports")
    assert [(x["thought"], x["public_pass_rate"], x["verified"]) for x in lines[:4]] == [
        ("", 0.75, False),
        ("A1.0", 1.0, False),  # a passing program on a pruned node
        ("B1.0", 0.75, False),
        ("B1.0\nA2.0", 1.0, True),
    ]
    out = tmp_path / "run"
    overrides = [f"data.inputs=['{tmp_path / 'exports'}']", "data.val_fraction=0.0"]
    overrides.append(f"data.min_public_pass_rate={min_rate}")  # 0.0 was the old default: negatives stay out
    assert trainer(["data", *[a for o in overrides for a in ("--set", o)], "--out", str(out)]) == 0
    metrics = json.loads((out / "data" / "stage.json").read_text())["metrics"]
    assert metrics["read"] == 8 and metrics["negatives"] == 6
    records = list(data.read_jsonl(out / "data" / "train.jsonl"))
    assert sorted((r.problem_id, r.thought, r.verified) for r in records) == [
        ("p1", "B1.0\nA2.0", True),
        ("p2", "B1.0\nA2.0", True),
    ]
    targets = [p.target for p in build_pairs(records, "completion") if p.kind == "t2s"]
    assert len(targets) == 2 and all("at B1.0|A2.0\nPR=1.0" in t for t in targets)
    assert not any("at A1.0" in t or "PR=0.75" in t for t in targets)


def _line(pid: str, rate: float | None, **flags: object) -> str:
    rec = {"problem_id": pid, "problem": f"problem {pid}", "thought": "t", "solution": f"print({pid!r})"}
    return json.dumps(rec | {"public_pass_rate": rate, "source": "deep:r", "policy": "A"} | flags) + "\n"


def _build(f: Path, min_rate: float) -> tuple[list[data.Trajectory], data.DataReport]:
    train, val, rep = data.build(
        [f],
        synthetic_n=0,
        bootstrap_sets=[],
        bootstrap_dir="",
        bootstrap_limit=0,
        val_fraction=0.0,
        max_chars=10_000,
        min_public_pass_rate=min_rate,
        seed=0,
    )
    return train + val, rep


def test_negative_lines_are_never_records_whatever_the_threshold(tmp_path: Path) -> None:
    f = tmp_path / "t.jsonl"
    f.write_text(
        _line("ok", 1.0, verified=True)
        + _line("ok2", 1.0, verified=True)
        + _line("pruned", 1.0, verified=False, negative=True)  # passing program, pruned node
        + _line("failing", 0.0, verified=False, negative=True)
        + _line("marked", 1.0, negative=True)  # either mark is enough
        + _line("legacy", 0.5)  # an older export without the marks: the threshold decides
    )
    kept, rep = _build(f, 0.0)
    assert sorted(r.problem_id for r in kept) == ["legacy", "ok", "ok2"]
    assert rep.negatives == 3 and rep.read == 6 and rep.filtered == 0
    kept, rep = _build(f, 1.0)
    assert sorted(r.problem_id for r in kept) == ["ok", "ok2"] and rep.filtered == 1


def test_a_negative_never_shadows_the_same_pair_when_deduplicating(tmp_path: Path) -> None:
    f = tmp_path / "t.jsonl"
    f.write_text(
        _line("a", 1.0, verified=False, negative=True) + _line("a", 1.0, verified=True) + _line("b", 1.0)
    )
    kept, rep = _build(f, 1.0)
    assert [(r.problem_id, r.verified) for r in kept] == [("a", True), ("b", None)] and rep.duplicates == 0


def test_marks_must_be_booleans(tmp_path: Path) -> None:
    f = tmp_path / "t.jsonl"
    f.write_text(_line("a", 1.0, verified="yes"))
    with pytest.raises(DatasetError, match=r"t.jsonl:1: verified must be true, false or null"):
        list(data.read_jsonl(f))


def test_default_threshold_is_every_public_test() -> None:
    assert load_config(None).data.min_public_pass_rate == 1.0
    assert load_config(None, ["data.min_public_pass_rate=0.5"]).data.min_public_pass_rate == 0.5


def test_bootstrap_stays_a_separately_labelled_source(tmp_path: Path) -> None:
    """Reference solutions carry no rate and no marks: the default threshold keeps them, under their label."""
    row = {
        "task_id": "Mbpp/1",
        "prompt": "def f(x):\n",
        "entry_point": "f",
        "canonical_solution": "    return x\n",
        "test": "",
    }
    (tmp_path / "mbpp_sanitized_train_val.jsonl").write_text(json.dumps(row) + "\n")
    train, val, rep = data.build(
        [],
        synthetic_n=1,
        bootstrap_sets=["mbpp"],
        bootstrap_dir=str(tmp_path),
        bootstrap_limit=0,
        val_fraction=0.0,
        max_chars=10_000,
        min_public_pass_rate=1.0,
        seed=0,
    )
    boot = [r for r in train + val if r.source.startswith("bootstrap:")]
    assert [(r.source, r.policy, r.public_pass_rate, r.verified) for r in boot] == [
        ("bootstrap:mbpp-reference", "reference+rule-thought", None, None)
    ]
    assert rep.negatives == 0 and rep.filtered == 0
