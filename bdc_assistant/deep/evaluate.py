"""The search's evaluator over the real sandbox: public tests only.

:class:`SandboxEvaluator` is built from a :class:`~.search.PublicProblem`, so the private tests of a
dataset problem are never in reach of the search; scoring on private tests happens after the search, in
the bench, with a separate call. :meth:`SandboxEvaluator.probe` runs a program on inputs that have no
expected output (the S* pick's distinguishing inputs, :mod:`.pick`), also in the sandbox.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..types import TestCase, Verdict
from . import trace as tracing
from .pick import behaviour
from .search import Evaluation, Failure, PublicProblem


def evaluation_from(verdicts: Sequence[Verdict], tests: Sequence[TestCase]) -> Evaluation:
    failures = []
    for i, (v, t) in enumerate(zip(verdicts, tests, strict=True)):
        if not v.passed:
            failures.append(
                Failure(
                    index=i,
                    input=t.input,
                    expected=t.output,
                    got=tracing.without_addresses(v.stdout[:4000])[:2000],
                    status=str(v.status),
                    detail=tracing.without_addresses(v.detail or v.stderr[-1000:])[:1000],
                )
            )
    n = max(len(verdicts), 1)
    return Evaluation(
        pass_rate=sum(v.passed for v in verdicts) / n,
        statuses=tuple(str(v.status) for v in verdicts),
        failures=tuple(failures),
    )


class SandboxEvaluator:
    def __init__(self, sandbox: Any, problem: PublicProblem, timeout_s: float | None = None) -> None:
        self.sandbox = sandbox
        self.tests = tuple(problem.public_tests)
        self.timeout_s = timeout_s
        self.checker = problem.checker
        self.call = problem.kind == "call" or bool(problem.entry_point)

    def evaluate(self, code: str) -> Evaluation:
        if not code.strip():
            return Evaluation(0.0, tuple("compile_error" for _ in self.tests), ())
        verdicts = self.sandbox.run_tests(code, self.tests, timeout_s=self.timeout_s, checker=self.checker)
        return evaluation_from(verdicts, self.tests)

    def trace(self, code: str, failure: Failure) -> str:
        test = self.tests[failure.index]
        program, stdin = tracing.traced_program(code, test)
        verdict = self.sandbox.run(program, stdin=stdin, timeout_s=(self.timeout_s or 4.0) * 3)
        source = code if test.kind == "stdio" else code.rstrip("\n") + "\n\n" + test.input + "\n"
        return tracing.render(tracing.parse(verdict.stderr), source) or f"(no trace: {verdict.status})"

    def probe(self, code: str, inputs: Sequence[str]) -> tuple[str, ...]:
        """One behaviour string per input (:func:`.pick.behaviour`), each from one sandboxed run: stdio
        problems get the input on stdin; call problems run the program followed by ``print(repr(INPUT))``."""
        out = []
        for inp in inputs:
            if self.call:
                verdict = self.sandbox.run(
                    code.rstrip("\n") + f"\n\nprint(repr({inp}))\n", stdin="", timeout_s=self.timeout_s
                )
            else:
                verdict = self.sandbox.run(code, stdin=inp, timeout_s=self.timeout_s)
            out.append(
                behaviour(verdict.passed, str(verdict.status), tracing.without_addresses(verdict.stdout))
            )
        return tuple(out)
