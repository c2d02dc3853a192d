"""Check the answer on the examples the problem states, and let the model fix what fails.

A user who writes "``>>> f(2)`` gives ``4``" or "your code should pass ``assert f(2) == 4``" expects the answer
to do that. After the code stage the solver runs the code on those examples (in the sandbox: model-written
code never runs in the app process); when one fails, the model is asked again, told the example and what
happened (the value returned, the error, the output printed), up to ``solver.repair_rounds`` times. The
retries sample (``solver.repair_temperature``, a fixed seed per round): shown its own code, or decoding
greedily, a 0.5B model writes the same code again (measured on mbpp-val: none of 29 repairs passed). The
version that passed the most examples is the answer — on a tie the earlier one, so a retry can only replace
code by code that does better on what the user stated.

Only the examples in the problem text are used: nothing else about the tests is known to the solver.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..pysource import defines
from ..types import TestCase, Verdict
from . import prompts

if TYPE_CHECKING:
    from ..config import Settings

FAILURE_CHARS = 600  # what of a failure the model is shown: enough for a value or a traceback's last lines


class ExampleRunner(Protocol):
    """Runs code on tests out of process and returns one verdict per test (the sandbox)."""

    def run(self, code: str, tests: Sequence[TestCase]) -> list[Verdict]: ...

    def close(self) -> None: ...


class SandboxRunner:
    """:class:`ExampleRunner` on a sandbox configured from the settings, started on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._sandbox: Any = None

    def run(self, code: str, tests: Sequence[TestCase]) -> list[Verdict]:
        if self._sandbox is None:
            from ..sandbox import sandbox_from_settings

            # One warm worker: a problem states a few examples, and a worker per core would idle in memory.
            one = self.settings.sandbox.model_copy(update={"workers": 1})
            self._sandbox = sandbox_from_settings(self.settings.model_copy(update={"sandbox": one})).start()
        return list(self._sandbox.run_tests(code, list(tests)))

    def close(self) -> None:
        if self._sandbox is not None:
            self._sandbox.close()
            self._sandbox = None


def examples_for(problem: str) -> list[TestCase]:
    """The problem's stated examples as tests: stdin/stdout examples, doctests, and ``assert`` lines."""
    from ..sandbox.examples import extract_examples

    return extract_examples(problem)


def explained(test: TestCase) -> TestCase:
    """``assert A == B`` rewritten so that a failure says what ``A`` returned (the model needs the value)."""
    if test.kind != "call":
        return test
    try:
        tree = ast.parse(test.input)
    except SyntaxError:
        return test
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.Assert):
        return test
    cond = tree.body[0].test
    if not (
        isinstance(cond, ast.Compare)
        and len(cond.ops) == 1
        and isinstance(cond.ops[0], ast.Eq)
        and len(cond.comparators) == 1
    ):
        return test
    got, want = ast.unparse(cond.left), ast.unparse(cond.comparators[0])
    code = (
        f"__bdc_got = ({got})\n"
        f"assert __bdc_got == ({want}), {got!r} + ' returned ' + repr(__bdc_got) + ', expected ' + {want!r}\n"
    )
    return TestCase(input=code, kind="call", origin=test.origin)


def runnable(problem: str, code: str) -> str:
    """The code as the examples will call it: a function stub's signature (and imports) prepended when the
    answer does not define the function itself, as the evaluation does."""
    stub = prompts.code_stub(problem)
    if stub is None:
        return code
    funcs = [n.name for n in ast.parse(stub).body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    return code if not funcs or defines(code, funcs[-1]) else stub + code


def describe(test: TestCase, verdict: Verdict) -> str:
    """One failing example as the model will read it."""
    status = str(verdict.status).replace("_", " ")
    if test.kind == "call":
        lines = verdict.stderr.strip().splitlines()
        detail = verdict.detail or (lines[-1] if lines else "")
        text = f"Example: {_shown(test)}\nResult: {status}: {detail}"
    else:
        text = (
            f"Example input:\n{test.input.rstrip()}\nExpected output:\n{test.output.rstrip()}\n"
            f"Result: {status}. Your program printed:\n{verdict.stdout.rstrip()[:300] or '(nothing)'}"
        )
        if verdict.stderr.strip():
            text += "\nError: " + verdict.stderr.strip().splitlines()[-1]
    return text[:FAILURE_CHARS]


def _shown(test: TestCase) -> str:
    """A call test as the user stated it (``assert f(x) == y``, without the message a doctest got)."""
    try:
        tree = ast.parse(test.input)
    except SyntaxError:
        return test.input.strip()
    if len(tree.body) == 1 and isinstance(tree.body[0], ast.Assert):
        return "assert " + ast.unparse(tree.body[0].test)
    return test.input.strip()


@dataclass(frozen=True)
class CheckResult:
    passed: int
    total: int
    failure: str  # the first failing example, described; "" when all passed


def check(runner: ExampleRunner, problem: str, code: str, examples: Sequence[TestCase]) -> CheckResult:
    verdicts = runner.run(runnable(problem, code), [explained(t) for t in examples])
    passed = sum(v.passed for v in verdicts)
    first = next(((t, v) for t, v in zip(examples, verdicts, strict=True) if not v.passed), None)
    return CheckResult(passed, len(examples), describe(*first) if first else "")
