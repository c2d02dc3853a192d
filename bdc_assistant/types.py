"""Frozen value types shared by every package (solver, sandbox, evaluation, deep mode, trainer, TUI)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

TestKind = Literal["stdio", "call"]


class CancelToken:
    """A flag checked once per generated token or LLM call; set from any thread (Esc in the TUI, Ctrl-C in
    the CLI)."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


@dataclass(frozen=True)
class TestCase:
    """One test.

    ``kind == "stdio"``: feed ``input`` on stdin, compare stdout with ``output``.
    ``kind == "call"``: ``input`` is Python test code run after the candidate program (for HumanEval /
    MBPP a ``check(candidate)`` block, or plain ``assert`` lines); ``output`` is unused. ``fn_name`` names
    the function under test (APPS ``fn_name`` style: ``input`` is then a JSON list of arguments and
    ``output`` the JSON-encoded expected value).
    """

    input: str
    output: str = ""
    kind: TestKind = "stdio"
    fn_name: str | None = None
    origin: Literal["user", "statement", "dataset", "generated"] = "dataset"

    __test__ = False  # not a pytest class


@dataclass(frozen=True)
class Problem:
    """A coding problem with public tests (seen by solvers/search) and private tests (only for scoring)."""

    id: str
    statement: str
    public_tests: tuple[TestCase, ...] = ()
    private_tests: tuple[TestCase, ...] = ()
    kind: TestKind = "stdio"
    entry_point: str | None = None
    starter_code: str = ""
    reference_solution: str | None = None
    source: str = ""
    difficulty: int | None = None
    tags: tuple[str, ...] = ()
    checker: str | None = None  # name of a registered output checker, for problems with many valid answers

    @property
    def all_tests(self) -> tuple[TestCase, ...]:
        return self.public_tests + self.private_tests


class Status(StrEnum):
    PASS = "pass"
    WRONG = "wrong"
    RUNTIME_ERROR = "runtime_error"
    TIMEOUT = "timeout"
    MEMORY = "memory"
    COMPILE_ERROR = "compile_error"


@dataclass(frozen=True)
class Verdict:
    """The outcome of running one program on one test. A timeout is a verdict, not an exception."""

    status: Status
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0
    detail: str = ""
    exit_code: int | None = None

    @property
    def passed(self) -> bool:
        return self.status is Status.PASS

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": str(self.status),
            "stdout": self.stdout,
            "stderr": self.stderr,
            "seconds": round(self.seconds, 4),
            "detail": self.detail,
            "exit_code": self.exit_code,
        }


@dataclass(frozen=True)
class Gates:
    """A query's whole customization: g ∈ R^{L × K·r} (expert-major within a layer), as nested lists."""

    values: tuple[tuple[float, ...], ...]
    n_experts: int
    rank: int
    cluster_similarity: tuple[float, ...] = ()
    cluster_names: tuple[str, ...] = ()

    def expert_means(self) -> list[float]:
        """Mean gate per expert over layers and rank rows (what ``bdc ask --json`` shows)."""
        sums = [0.0] * self.n_experts
        count = 0
        for row in self.values:
            count += 1
            for k in range(self.n_experts):
                block = row[k * self.rank : (k + 1) * self.rank]
                sums[k] += sum(block) / max(len(block), 1)
        return [s / max(count, 1) for s in sums]


# ---- solver events: the CLI and the TUI consume these and nothing else -------------------------------


@dataclass(frozen=True)
class Started:
    backend: str
    model: str
    bundle: str | None
    gates: Gates | None = None
    setup_ms: float = 0.0


@dataclass(frozen=True)
class ThoughtToken:
    text: str


@dataclass(frozen=True)
class CodeToken:
    text: str


@dataclass(frozen=True)
class StageDone:
    stage: Literal["thought", "solution", "repair"]
    text: str
    tokens: int
    seconds: float


@dataclass(frozen=True)
class Checked:
    """The answer's code was run (in the sandbox) on the examples the problem states.

    ``repairing`` = it failed one and the model is now shown that failure and writes the code again: the
    :class:`CodeToken` events that follow are the new version (a consumer shows it in place of the old).
    The final :class:`Answer` carries the version that passed the most examples; when that is not the last
    version streamed, one more ``Checked`` says so and carries it in ``kept``.
    """

    round: int
    passed: int
    total: int
    failure: str = ""
    repairing: bool = False
    # after the last retry: the code kept when it is an earlier version than the last one shown
    kept: str = ""


@dataclass(frozen=True)
class Answer:
    """The final event of a solve."""

    problem: str
    thought: str
    solution_text: str
    code: str
    backend: str
    model: str
    bundle: str | None
    tokens: int
    seconds: float
    tokens_per_s: float
    cancelled: bool = False
    gates: Gates | None = None
    extra: dict[str, Any] = field(default_factory=dict)


SolverEvent = Started | ThoughtToken | CodeToken | StageDone | Checked | Answer
