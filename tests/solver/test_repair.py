"""Checking the answer on the problem's stated examples and repairing what fails (``solver.repair_rounds``):
which examples are found, what the model is told, which version is kept, and that every consumer shows it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from bdc_assistant.config import load_settings
from bdc_assistant.serve.render import MarkdownRenderer
from bdc_assistant.solver import repair
from bdc_assistant.solver.session import Solver
from bdc_assistant.types import Answer, Checked, CodeToken, StageDone, Status, TestCase, Verdict
from tests.fakes import FakeGenerator

STUB = 'def add(a, b):\n    """Return a + b.\n    >>> add(1, 2)\n    3\n    """\n'
WRONG = "```python\ndef add(a, b):\n    return a - b\n```"
RIGHT = "```python\ndef add(a, b):\n    return a + b\n```"
CRASH = "```python\ndef add(a, b):\n    return a + undefined_name\n```"
MBPP = (
    'def min_cost(cost, m, n):\n    """Write a function to find the minimum cost path.\n'
    "    Your code should pass this test:\n"
    '    assert min_cost([[1, 2, 3], [4, 8, 2], [1, 5, 3]], 2, 2) == 8\n    """\n'
)


def _solver(tmp_path: Path, gen: FakeGenerator, runner: Any, rounds: int = 1, style: str = "chat") -> Solver:
    settings = load_settings(tmp_path / "none.toml")
    solver_settings = settings.solver.model_copy(update={"plan": "off", "repair_rounds": rounds})
    settings = settings.model_copy(update={"solver": solver_settings})
    return Solver(settings, gen, style, examples=runner)  # type: ignore[arg-type]


class ScriptedRunner:
    """Verdicts by whether the code contains a marker; records what it was asked to run."""

    def __init__(self, passing: str = "a + b") -> None:
        self.passing = passing
        self.runs: list[tuple[str, list[TestCase]]] = []
        self.closed = False

    def run(self, code: str, tests: Sequence[TestCase]) -> list[Verdict]:
        self.runs.append((code, list(tests)))
        ok = self.passing in code
        return [
            Verdict(Status.PASS)
            if ok
            else Verdict(Status.WRONG, detail="AssertionError: add(1, 2) returned -1")
            for _ in tests
        ]

    def close(self) -> None:
        self.closed = True


def test_examples_come_from_doctests_and_assert_lines() -> None:
    doc = repair.examples_for(STUB)
    assert [t.kind for t in doc] == ["call"] and "add(1, 2)" in doc[0].input
    mbpp = repair.examples_for(MBPP)
    assert len(mbpp) == 1 and mbpp[0].input.startswith("assert min_cost(")
    stdio = repair.examples_for("Print twice n.\n\nExamples\nInput\n3\nOutput\n6\n")
    assert [(t.input, t.output) for t in stdio] == [("3\n", "6\n")]
    assert repair.examples_for("Write a function that reverses a string.") == []


def test_a_failure_tells_the_model_what_its_code_returned() -> None:
    """The rewritten assert reports the value, in the real sandbox (model code never runs in process)."""
    runner = repair.SandboxRunner(load_settings())
    try:
        examples = repair.examples_for(MBPP)
        bad = repair.check(runner, MBPP, "def min_cost(cost, m, n):\n    return 7\n", examples)
        assert (bad.passed, bad.total) == (0, 1)
        assert "assert min_cost([[1, 2, 3], [4, 8, 2], [1, 5, 3]], 2, 2) == 8" in bad.failure
        assert "returned 7, expected 8" in bad.failure
        good = repair.check(runner, MBPP, "def min_cost(cost, m, n):\n    return 8\n", examples)
        assert (good.passed, good.failure) == (1, "")
        assert runner._sandbox.n_workers == 1  # a few examples: one warm worker, not one per core
        # a body without the signature is run under the stub, as the evaluation runs it
        assert repair.runnable(STUB, "    return a + b\n").startswith("def add(a, b):")
    finally:
        runner.close()


def test_a_failing_answer_is_repaired_and_the_fix_is_the_answer(tmp_path: Path) -> None:
    gen = FakeGenerator([WRONG, RIGHT])
    runner = ScriptedRunner()
    events = list(_solver(tmp_path, gen, runner).solve(STUB))
    checks = [e for e in events if isinstance(e, Checked)]
    assert [(c.round, c.passed, c.total, c.repairing) for c in checks] == [(0, 0, 1, True), (1, 1, 1, False)]
    assert "returned -1" in checks[0].failure
    assert [e.stage for e in events if isinstance(e, StageDone)] == ["thought", "solution", "repair"]
    retry_prompt, retry_params = gen.calls[1]
    assert "returned -1" in retry_prompt and "def add(a, b):" in retry_prompt  # the task and what failed
    assert "return a - b" not in retry_prompt  # not the failed code: a small model would copy it
    assert retry_params.temperature == 0.7 and retry_params.seed == 1  # sampled, reproducibly
    assert gen.calls[0][1].temperature == 0.0
    answer = events[-1]
    assert isinstance(answer, Answer) and "a + b" in answer.code
    assert answer.extra["examples"] == {
        "total": 1,
        "passed": 1,
        "per_round": [0, 1],
        "first_code": "def add(a, b):\n    return a - b\n",
    }
    code_tokens = "".join(e.text for e in events if isinstance(e, CodeToken))
    assert code_tokens == WRONG + RIGHT
    assert answer.tokens == -(-len(WRONG) // 3) + -(-len(RIGHT) // 3)  # the repair's tokens count too


def test_a_repair_that_does_no_better_keeps_the_first_answer(tmp_path: Path) -> None:
    gen = FakeGenerator([WRONG, CRASH, CRASH])
    answer = _solver(tmp_path, gen, ScriptedRunner(), rounds=2).answer(STUB)
    assert "a - b" in answer.code  # ties go to the earlier version
    assert answer.extra["examples"]["per_round"] == [0, 0, 0] and len(gen.calls) == 3
    assert [params.seed for _, params in gen.calls] == [0, 1, 2]  # each retry draws differently


def test_when_an_earlier_version_stands_the_stream_ends_with_it(tmp_path: Path) -> None:
    """The Markdown's last code block is the answer, also when the retries did worse than the first try."""
    runner = ScriptedRunner(passing="a - b")  # the first version passes; retries crash
    runner.run = lambda code, tests: [  # type: ignore[method-assign]
        Verdict(Status.PASS) if "a - b" in code else Verdict(Status.WRONG, detail="x"),
        Verdict(Status.WRONG, detail="AssertionError: add(2, 2) returned 0, expected 4"),
    ]
    two = STUB.replace("    3\n", "    3\n    >>> add(2, 2)\n    4\n")
    assert len(repair.examples_for(two)) == 2
    events = list(_solver(tmp_path, FakeGenerator([WRONG, CRASH, CRASH]), runner, rounds=2).solve(two))
    kept = [e for e in events if isinstance(e, Checked) and e.kept]
    assert len(kept) == 1 and "a - b" in kept[0].kept and kept[0].passed == 1
    answer = events[-1]
    assert isinstance(answer, Answer) and "a - b" in answer.code
    renderer = MarkdownRenderer()
    text = "".join(renderer.feed(e) for e in events) + renderer.finish()
    last_block = text.rsplit("```python", 1)[1]
    assert "a - b" in last_block and "undefined_name" not in last_block


def test_a_passing_answer_is_checked_once_and_not_touched(tmp_path: Path) -> None:
    gen = FakeGenerator([RIGHT, WRONG])
    runner = ScriptedRunner()
    events = list(_solver(tmp_path, gen, runner).solve(STUB))
    assert len(gen.calls) == 1 and len(runner.runs) == 1
    assert [(c.passed, c.repairing) for c in events if isinstance(c, Checked)] == [(1, False)]


@pytest.mark.parametrize(
    ("rounds", "style", "problem"),
    [(0, "chat", STUB), (1, "completion", STUB), (1, "chat", "Reverse a string.")],
)
def test_no_check_when_off_for_base_models_or_without_examples(
    tmp_path: Path, rounds: int, style: str, problem: str
) -> None:
    runner = ScriptedRunner()
    gen = FakeGenerator([WRONG, RIGHT, RIGHT])
    events = list(_solver(tmp_path, gen, runner, rounds=rounds, style=style).solve(problem))
    assert runner.runs == [] and not any(isinstance(e, Checked) for e in events)


def test_no_sandbox_means_the_answer_stands_with_a_reason(tmp_path: Path) -> None:
    from bdc_assistant.errors import SandboxError

    class Broken(ScriptedRunner):
        def run(self, code: str, tests: Sequence[TestCase]) -> list[Verdict]:
            raise SandboxError("This machine cannot isolate programs.")

    answer = _solver(tmp_path, FakeGenerator([WRONG, RIGHT]), Broken()).answer(STUB)
    assert "a - b" in answer.code and answer.extra["examples"] == {
        "error": "This machine cannot isolate programs."
    }


def test_the_markdown_shows_the_fix_as_the_last_block(tmp_path: Path) -> None:
    events = list(_solver(tmp_path, FakeGenerator([WRONG, RIGHT]), ScriptedRunner()).solve(STUB))
    renderer = MarkdownRenderer()
    text = "".join(renderer.feed(e) for e in events) + renderer.finish()
    assert text.index("a - b") < text.index("## Fix") < text.index("a + b")
    assert "> Result: wrong: AssertionError: add(1, 2) returned -1" in text
    assert text.count("```python") == 2 and text.rstrip().endswith("```")


def test_closing_the_solver_closes_its_sandbox(tmp_path: Path) -> None:
    runner = ScriptedRunner()
    gen = FakeGenerator([])
    _solver(tmp_path, gen, runner).close()
    assert runner.closed and gen.closed
