"""Golden test: paper_compat and strict PR/AC from a hand-made result file, computed by hand below."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bdc_assistant.evaluation.metrics import CompatFlags, compute

RECORDS = [json.loads(line) for line in (Path(__file__).parent / "data" / "golden_results.jsonl").open()]


def test_paper_compat_first_tie_break() -> None:
    # p1: best public is candidate 1 (2/2) → private 1/3; p2: 1; p3: tie 1/2 vs 1/2 → first → 1;
    # p4: only 1 test → dropped; p5: errored → 0 in the denominator; p6: -1/-2 are failures → 0.
    s = compute(RECORDS, "paper_compat", CompatFlags(tie_break="first"))
    assert s.denominator == 5 and s.dropped == 1 and s.errored == 1
    assert s.dropped_ids == ("p4",) and s.errored_ids == ("p5",)
    assert s.pr == pytest.approx(100 * (1 / 3 + 1 + 1 + 0 + 0) / 5)
    assert s.ac == pytest.approx(40.0)
    assert s.tokens == 15 and s.seconds == pytest.approx(2.0)


def test_paper_compat_last_tie_break_and_quirks() -> None:
    s = compute(RECORDS, "paper_compat", CompatFlags(tie_break="last"))
    assert s.pr == pytest.approx(100 * (1 / 3 + 1) / 5)
    assert s.ac == pytest.approx(20.0)
    s = compute(RECORDS, "paper_compat", CompatFlags(call_based_zero=True))
    assert s.pr == pytest.approx(100 * (1 / 3 + 0 + 1) / 5)
    assert s.ac == pytest.approx(20.0)
    s = compute(RECORDS, "paper_compat", CompatFlags(drop_lt2_tests=False))
    assert s.denominator == 6 and s.dropped == 0
    assert s.ac == pytest.approx(100 * 3 / 6)


def test_strict_scores_the_final_answer_on_all_tests() -> None:
    s = compute(RECORDS, "strict")
    assert s.denominator == 6 and s.dropped == 0 and s.errored == 1
    assert s.pr == pytest.approx(100 * (0.6 + 1 + 0.25 + 1 + 0 + 0) / 6)
    assert s.ac == pytest.approx(100 * 2 / 6)
    assert s.pass_at_1 == s.ac


def test_program_timeout_quirk_zeroes_a_slow_program() -> None:
    rec = {"id": "slow", "candidates": [{"public": ["pass"], "private": ["pass", "pass"], "seconds": 12.0}]}
    assert compute([rec], "paper_compat").ac == 100.0
    s = compute([rec], "paper_compat", CompatFlags(program_timeout_s=10.0))
    assert (s.pr, s.ac) == (0.0, 0.0)
