"""The eval loop with a scripted fake solver: prompt prepending, JSONL records, resume, summary."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bdc_assistant.evaluation.datasets import load_dataset
from bdc_assistant.evaluation.runner import EvalRun, evaluate, prepare_code
from bdc_assistant.sandbox import Sandbox, SandboxLimits
from bdc_assistant.types import Answer, Problem, TestCase


@dataclass
class FakeSolver:
    """Answers from a script keyed by the problem text; records every call."""

    answers: dict[str, str]
    calls: list[str] = field(default_factory=list)
    fail_on: set[str] = field(default_factory=set)

    def answer(self, problem: str, max_tokens: int | None = None) -> Answer:
        self.calls.append(problem)
        if problem in self.fail_on:
            raise RuntimeError("model fell over")
        # stdin problems reach the solver with an I/O note appended: the script is keyed by the statement
        code = self.answers.get(problem, self.answers.get(problem.split("\n\n", 1)[0], ""))
        return Answer(
            problem=problem,
            thought="",
            solution_text=code,
            code=code,
            backend="fake",
            model="fake",
            bundle=None,
            tokens=7,
            seconds=0.25,
            tokens_per_s=28.0,
        )


@pytest.fixture(scope="module")
def box() -> Iterator[Sandbox]:
    with Sandbox(workers=2, limits=SandboxLimits(timeout_s=2.0)) as sb:
        yield sb


def test_prepare_code_prepends_prompt_only_when_needed() -> None:
    p = Problem(
        id="x",
        statement="def f(a):\n    '''doc'''\n",
        kind="call",
        entry_point="f",
        starter_code="def f(a):\n    '''doc'''\n",
    )
    assert prepare_code(p, "def f(a):\n    return a\n") == "def f(a):\n    return a\n"
    assert prepare_code(p, "    return a\n") == "def f(a):\n    '''doc'''\n    return a\n"


def test_humaneval_loop_resume_and_summary(box: Sandbox, tmp_path: Path) -> None:
    problems = load_dataset("humaneval", limit=4)
    # problem 0: full correct function; 1: body-only completion (prompt gets prepended); 2: wrong; 3: crash
    ref0 = problems[0].reference_solution or ""
    body1 = (problems[1].reference_solution or "")[len(problems[1].statement) :]
    answers = {
        problems[0].statement: ref0,
        problems[1].statement: body1,
        problems[2].statement: f"def {problems[2].entry_point}(*a, **k):\n    return None\n",
    }
    solver = FakeSolver(answers, fail_on={problems[3].statement})
    run = EvalRun(tmp_path / "ev", "humaneval")
    summary = evaluate(problems[:2], solver, box, run)  # "interrupted" after 2 problems
    assert summary["strict"]["denominator"] == 2 and summary["pass_at_1"] == 100.0
    summary = evaluate(problems, solver, box, run)  # resume: only 2 and 3 are solved now
    assert len(solver.calls) == 4
    records = [json.loads(line) for line in run.results_file.read_text().splitlines()]
    assert [r["id"] for r in records] == [p.id for p in problems]
    assert records[1]["code"].startswith(problems[1].statement)
    assert records[2]["candidates"][0]["scoring"] == ["wrong"]
    assert records[3]["error"] == "RuntimeError: model fell over"
    s = summary["strict"]
    assert (s["denominator"], s["errored"], s["ac"]) == (4, 1, 50.0)
    assert summary["pass_at_1"] == 50.0
    assert summary["tokens"] == 21
    assert json.loads((run.out_dir / "summary.json").read_text())["pass_at_1"] == 50.0


def test_torn_last_line_is_redone(box: Sandbox, tmp_path: Path) -> None:
    problems = [
        Problem(
            id="a",
            statement="double",
            public_tests=(TestCase("2\n", "4\n"),),
            private_tests=(TestCase("5\n", "10\n"),),
        )
    ]
    solver = FakeSolver({"double": "print(int(input()) * 2)"})
    run = EvalRun(tmp_path / "ev", "custom")
    run.open()
    run.results_file.write_text('{"id": "a", "cand')
    summary = evaluate(problems, solver, box, run)
    assert summary["strict"]["ac"] == 100.0 and summary["paper_compat"]["pr"] == 100.0
    assert len(run.results_file.read_text().splitlines()) == 1


def test_other_dataset_in_the_same_dir_is_refused(tmp_path: Path) -> None:
    from bdc_assistant.errors import DatasetError

    EvalRun(tmp_path, "mbpp").open()
    with pytest.raises(DatasetError):
        EvalRun(tmp_path, "humaneval").open()


def test_every_problem_starts_from_an_empty_prompt_cache(box: Sandbox, tmp_path: Path) -> None:
    """A solver that caches its prompt prefix is told to forget it before each problem (and only then)."""

    @dataclass
    class CachingSolver(FakeSolver):
        def forget_prompt_cache(self) -> None:
            self.calls.append("<forget>")

    problems = load_dataset("humaneval", limit=3)
    solver = CachingSolver({})
    evaluate(problems, solver, box, EvalRun(tmp_path / "ev", "humaneval"))
    assert solver.calls == [x for p in problems for x in ("<forget>", p.statement)]
