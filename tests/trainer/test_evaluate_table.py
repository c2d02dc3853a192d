"""The Table-2 shape: groups (CodeContests split easy/hard like the paper), strict PR/AC, overall."""

from __future__ import annotations

from bdc_assistant.types import Problem
from trainer.evaluate import group_of, markdown, slug, table


def _rec(pid: str, statuses: list[str]) -> dict:
    return {
        "id": pid,
        "kind": "stdio",
        "error": None,
        "candidates": [{"public": statuses[:1], "private": statuses[1:]}],
    }


def test_groups_follow_the_paper_split() -> None:
    assert group_of("codecontests", Problem("a", "s", difficulty=7)) == "codecontests-easy"
    assert group_of("codecontests", Problem("a", "s", difficulty=11)) == "codecontests-hard"
    assert group_of("humaneval", Problem("a", "s")) == "humaneval"
    assert slug("SFT on cluster 0 (a-b)") == "sft-on-cluster-0-a-b"


def test_table_values_and_markdown() -> None:
    results = {
        "w/o tuning": {"humaneval": [_rec("1", ["pass", "wrong"]), _rec("2", ["wrong", "wrong"])]},
        "DisenLoRA": {
            "humaneval": [_rec("1", ["pass", "pass"]), _rec("2", ["pass", "wrong"])],
            "codecontests-easy": [_rec("3", ["pass", "pass", "pass", "pass"])],
        },
    }
    tab = table(results)
    assert tab["columns"] == ["humaneval", "codecontests-easy", "overall"]
    base = tab["rows"]["w/o tuning"]["humaneval"]
    assert base["pr"] == 25.0 and base["ac"] == 0.0 and base["n"] == 2
    dis = tab["rows"]["DisenLoRA"]
    assert dis["humaneval"]["pr"] == 75.0 and dis["humaneval"]["ac"] == 50.0
    assert dis["overall"]["n"] == 3 and dis["overall"]["ac"] == round(200 / 3, 2)
    md = markdown(tab, "T")
    assert "| DisenLoRA | 75.00 | 50.00 | 100.00 | 100.00 |" in md
    assert "| w/o tuning | 25.00 | 0.00 | – | – |" in md
