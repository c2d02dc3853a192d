"""Acceptance: the canonical HumanEval and MBPP solutions pass ≥ 99 % in strict mode through the sandbox."""

from __future__ import annotations

import pytest

from bdc_assistant.evaluation.datasets import load_dataset
from bdc_assistant.sandbox import Sandbox, SandboxLimits


@pytest.mark.slow
@pytest.mark.parametrize("name", ["humaneval", "mbpp"])
def test_canonical_solutions_pass_strict(name: str) -> None:
    problems = load_dataset(name)
    failures = []
    with Sandbox(limits=SandboxLimits(timeout_s=6.0)) as sb:
        for p in problems:
            scoring = [t for t in p.all_tests if t.origin == "dataset"]
            verdicts = sb.run_tests(p.reference_solution or "", scoring)
            if not all(v.passed for v in verdicts):
                failures.append((p.id, [v.detail for v in verdicts if not v.passed]))
    rate = 1 - len(failures) / len(problems)
    assert rate >= 0.99, failures


def test_a_few_canonical_solutions_pass_quickly() -> None:
    with Sandbox(workers=1, limits=SandboxLimits(timeout_s=6.0)) as sb:
        for name in ("humaneval", "mbpp"):
            for p in load_dataset(name, limit=5):
                assert all(v.passed for v in sb.run_tests(p.reference_solution or "", p.private_tests)), p.id
