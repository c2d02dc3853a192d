"""The jsonl export writes verified pairs only; ``--include-negatives`` adds the rest, marked as negatives.

The runs are hand-built trees stored in the real SQLite store, so every status (ill, replaced, exhausted,
unsimulated) and every test provenance (person-written, generated only, none) is pinned exactly.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict

import pytest

from bdc_assistant.cli import main as bdc
from bdc_assistant.deep.exports import trajectories
from bdc_assistant.deep.tree import NodeStatus, Solution, Tree
from bdc_assistant.store.runs import RunStore
from bdc_assistant.types import TestCase

PASS = "print(sum(map(int, input().split())))\n"


@pytest.fixture
def store() -> Iterator[RunStore]:
    s = RunStore()
    yield s
    s.close()


def _node(
    tree: Tree,
    parent: int | None,
    thoughts: Sequence[str],
    status: NodeStatus,
    rates: Sequence[float] | None,
) -> int:
    """Add a node whose policies A, B, … wrote programs with these public pass rates (None: unsimulated)."""
    node = tree.add(parent, thoughts, ["A"] * len(thoughts), 0.5)
    if parent is not None:
        tree.nodes[parent].children.append(node.id)
    node.status = status
    node.reason = "PR 0.5000 < parent PR 0.7500" if status in ("ill", "replaced") else ""
    if rates is not None:
        node.simulated = True
        node.solutions = [
            Solution(chr(65 + i), 0, PASS if r >= 1 else f"print({node.id}{i})  # PR={r}\n", r)
            for i, r in enumerate(rates)
        ]
    return node.id


def _tree() -> Tree:
    """root 0.5 · 1 ill (best 1.0) · 2 replaced (best 1.0) by 5 (unsimulated) · 3 open 0.75 → 4 terminal 1.0
    · 6 exhausted (best 1.0)."""
    t = Tree()
    root = _node(t, None, [], "open", [0.5, 0.25])
    _node(t, root, ["guess"], "ill", [1.0, 0.0])
    two = _node(t, root, ["subtract"], "replaced", [1.0, 0.0])
    mid = _node(t, root, ["read a and b"], "open", [0.75, 0.5])
    _node(t, mid, ["read a and b", "print the sum"], "terminal", [0.0, 1.0])
    t.nodes[two].replaced_by = _node(t, root, ["add them"], "open", None)
    _node(t, root, ["loop"], "exhausted", [1.0, 1.0])
    return t


def _store_run(store: RunStore, run_id: str, tests: Sequence[TestCase]) -> str:
    problem = {"id": "add", "statement": "Print a+b.", "public_tests": [asdict(t) for t in tests]}
    store.create_run(run_id, problem, {}, [])
    tree = _tree().to_json()
    store.finish(run_id, status="finished", stopped_by="solved", result={}, tree=tree, meter={}, events=[])
    return run_id


USER_TEST = TestCase("1 2\n", "3\n", origin="user")


def test_default_export_is_verified_pairs_only(store: RunStore) -> None:
    rid = _store_run(store, "r-user", [USER_TEST, TestCase("7 8\n", "15\n", origin="generated")])
    rows = trajectories(store, rid)
    # node 4 (terminal, 1.0) and node 6 (exhausted: its children were pruned, not it; 1.0)
    assert [(r["thought"], r["public_pass_rate"]) for r in rows] == [
        ("read a and b\nprint the sum", 1.0),
        ("loop", 1.0),
    ]
    assert all(r["verified"] is True and "negative" not in r for r in rows)
    assert rows[0]["solution"] == PASS and rows[0]["policy"] == "B"  # the best program, not the first


def test_include_negatives_marks_pruned_failing_and_keeps_unsimulated_out(store: RunStore) -> None:
    rid = _store_run(store, "r-neg", [USER_TEST])
    rows = trajectories(store, rid, include_negatives=True)
    by_thought = {r["thought"]: r for r in rows}
    assert list(by_thought) == [
        "",
        "guess",
        "subtract",
        "read a and b",
        "read a and b\nprint the sum",
        "loop",
    ]
    assert "add them" not in by_thought  # never simulated: no program at all
    negatives = {t for t, r in by_thought.items() if r["verified"] is False and r["negative"] is True}
    assert negatives == {"", "guess", "subtract", "read a and b"}
    assert by_thought["guess"]["rejected"].startswith("the node is ill (pruned)")
    assert by_thought["subtract"]["rejected"].startswith("the node is replaced (pruned)")
    assert by_thought["guess"]["public_pass_rate"] == 1.0  # a passing program on a pruned node is out too
    assert "0.75" in by_thought["read a and b"]["rejected"]
    verified = [r for r in rows if r["verified"]]
    assert [r["thought"] for r in verified] == ["read a and b\nprint the sum", "loop"]
    assert all("negative" not in r and "rejected" not in r for r in verified)


@pytest.mark.parametrize(
    ("tests", "why"),
    [
        ([TestCase("7 8\n", "15\n", origin="generated")], "no public test written by a person"),
        ([], "no public test written by a person"),
    ],
    ids=["generated_only", "no_tests"],
)
def test_nothing_is_verified_without_person_written_tests(
    store: RunStore, tests: list[TestCase], why: str
) -> None:
    rid = _store_run(store, "r-gen", tests)
    assert trajectories(store, rid) == []
    rows = trajectories(store, rid, include_negatives=True)
    assert len(rows) == 6 and all(r["negative"] for r in rows)
    assert all(why in r["rejected"] for r in rows if r["thought"] not in ("guess", "subtract"))


def test_runs_export_cli_flag(store: RunStore, capsys: pytest.CaptureFixture[str]) -> None:
    rid = _store_run(store, "r-cli", [USER_TEST])
    assert bdc(["runs", "export", rid, "--format", "jsonl"]) == 0
    plain = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["verified"] for r in plain] == [True, True]
    assert bdc(["runs", "export", rid, "--format", "jsonl", "--include-negatives"]) == 0
    full = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(full) == 6 and sum(r.get("negative", False) for r in full) == 4
    assert [r for r in full if r["verified"]] == plain
