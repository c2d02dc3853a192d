"""Every CodeContests checker accepts the dataset's own expected outputs and rejects broken ones."""

from __future__ import annotations

import pytest

from bdc_assistant.evaluation import cc_checkers
from bdc_assistant.evaluation.datasets import load_dataset
from bdc_assistant.sandbox.checkers import get_checker
from bdc_assistant.sandbox.judges import verdict_from
from bdc_assistant.types import Status

CHECKED = [p for p in load_dataset("codecontests") if p.checker]


def test_checkers_are_attached() -> None:
    assert len(CHECKED) == len(cc_checkers.CHECKER_FOR) >= 15


@pytest.mark.parametrize("problem", CHECKED, ids=lambda p: p.id)
def test_checker_accepts_expected_and_rejects_garbage(problem) -> None:  # type: ignore[no-untyped-def]
    check = get_checker(problem.checker)
    assert check is not None
    for t in problem.all_tests:
        if t.output.rstrip().endswith("..."):
            continue  # CodeContests stores long outputs truncated with "..."; only a checker can judge those
        assert check(t.input, t.output, t.output), f"expected output of {problem.id} rejected"
    t = problem.all_tests[0]
    for bad in ("", "garbage", "-1 -1 -1"):
        raw = {"stdout": bad, "stderr": "", "exit": 0, "markers": ["ready"], "wall_s": 0.01}
        assert verdict_from(raw, t, checker=check).status is Status.WRONG


def test_unknown_checker_is_one_sentence() -> None:
    from bdc_assistant.errors import SandboxError

    with pytest.raises(SandboxError, match="Unknown output checker"):
        get_checker("no-such-checker")
