"""Sandbox outcomes recorded beside the response cache, so that a deep-bench resumed on another machine
sees what the first one saw.

Why: the response cache lets a resumed bench re-send nothing only while every prompt is the same text, and
prompts quote test results, which can depend on the machine. A program near the time limit passes on a fast
CPU and times out on a slower one; LDB's traced run (tracing slows a program many times over) finishes on
one and not on the other. A replay of 38 CodeContests problems on a slower CPU than the one that first ran
them re-asked 15 prompts in three problems, two of them after a test or a traced run timed out that had
finished on the first machine, and each new answer took its row elsewhere. With a record, the first
sitting that runs a program on a test set decides the outcome, and every later sitting, on any machine,
reads it back; a replay also skips the sandbox altogether, which makes it much faster.

What is recorded is what the search and the scores read, not raw verdicts (a CodeContests program's output
can be megabytes): an :class:`~.search.Evaluation` without the test texts, a trace as its prompt text, a
probe's behaviour strings, a private pass rate. Keys are content hashes of the operation, the program, the
tests (with checker and time limit) and the sandbox's limits, so a changed test, limit or program is run
again. Only ``bdc deep-bench`` records: the app's deep mode runs every program for real.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from ..types import TestCase
from .search import Evaluation, Failure

T = TypeVar("T")
FORMAT = 1  # part of every key: a change in what is recorded invalidates the old records


class OutcomeStore(Protocol):
    def outcome_get(self, key: str) -> str | None: ...

    def outcome_put(self, key: str, op: str, value_json: str) -> None: ...


@functools.lru_cache(maxsize=256)
def tests_fingerprint(
    tests: tuple[TestCase, ...], *, checker: str | None, timeout_s: float | None, call: bool = False
) -> str:
    """One hash for a test set as it is run: every test's fields, the checker, the time limit. Memoized:
    every row of a problem scores its programs on the same tests (CodeContests inputs can be megabytes)."""
    rows = [[t.kind, t.input, t.output, t.fn_name] for t in tests]
    return _digest({"tests": rows, "checker": checker, "timeout_s": timeout_s, "call": call})


@dataclass
class OutcomeRecord:
    """Recall an outcome by its key or compute, record and return it. ``limits`` (the sandbox's) salt every
    key. Thread-safe: deep-bench's ``--jobs`` share one record."""

    store: OutcomeStore
    limits: dict[str, Any] = field(default_factory=dict)
    recalled: int = 0
    recorded: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def recall(
        self,
        op: str,
        payload: dict[str, Any],
        compute: Callable[[], T],
        encode: Callable[[T], Any],
        decode: Callable[[Any], T],
    ) -> T:
        key = _digest({"format": FORMAT, "op": op, "limits": self.limits, **payload})
        with self._lock:
            raw = self.store.outcome_get(key)
            if raw is not None:
                self.recalled += 1
        if raw is not None:
            return decode(json.loads(raw))
        value = compute()
        with self._lock:
            self.store.outcome_put(key, op, json.dumps(encode(value), ensure_ascii=False, sort_keys=True))
            self.recorded += 1
        return value

    def counts(self) -> dict[str, int]:
        return {"recalled": self.recalled, "recorded": self.recorded}


def sandbox_limits(sandbox: Any) -> dict[str, Any]:
    """The sandbox's limits as a dict (none for a sandbox without them: a test double)."""
    limits = getattr(sandbox, "limits", None)
    if not dataclasses.is_dataclass(limits) or isinstance(limits, type):
        return {}
    return dataclasses.asdict(limits)


class RecordedEvaluator:
    """An evaluator (:class:`~.evaluate.SandboxEvaluator`) whose outcomes go through an :class:`OutcomeRecord`."""

    def __init__(self, inner: Any, record: OutcomeRecord) -> None:
        self.inner = inner
        self.record = record
        self.tests: tuple[TestCase, ...] = tuple(inner.tests)
        self._tests = tests_fingerprint(
            self.tests, checker=inner.checker, timeout_s=inner.timeout_s, call=inner.call
        )

    def evaluate(self, code: str) -> Evaluation:
        if not code.strip():  # answered without the sandbox: nothing to record
            return self.inner.evaluate(code)  # type: ignore[no-any-return]
        return self.record.recall(
            "evaluate",
            {"tests": self._tests, "code": code},
            lambda: self.inner.evaluate(code),
            _encode_evaluation,
            self._decode_evaluation,
        )

    def trace(self, code: str, failure: Failure) -> str:
        return self.record.recall(
            "trace",
            {"tests": self._tests, "code": code, "index": failure.index},
            lambda: self.inner.trace(code, failure),
            str,
            str,
        )

    def probe(self, code: str, inputs: Sequence[str]) -> tuple[str, ...]:
        return self.record.recall(
            "probe",
            {"tests": self._tests, "code": code, "inputs": list(inputs)},
            lambda: tuple(self.inner.probe(code, inputs)),
            list,
            tuple,
        )

    def _decode_evaluation(self, value: dict[str, Any]) -> Evaluation:
        return Evaluation(
            pass_rate=float(value["pass_rate"]),
            statuses=tuple(value["statuses"]),
            failures=tuple(
                Failure(
                    index=f["index"],
                    input=self.tests[f["index"]].input,
                    expected=self.tests[f["index"]].output,
                    got=f["got"],
                    status=f["status"],
                    detail=f["detail"],
                )
                for f in value["failures"]
            ),
        )


def recorded(evaluator: Any, record: OutcomeRecord | None) -> Any:
    """``evaluator`` behind ``record``, or itself when there is no record."""
    return evaluator if record is None else RecordedEvaluator(evaluator, record)


def _encode_evaluation(e: Evaluation) -> dict[str, Any]:
    # A failure's input and expected output are the test's own: rebuilt from the tests on the way back.
    return {
        "pass_rate": e.pass_rate,
        "statuses": list(e.statuses),
        "failures": [
            {"index": f.index, "got": f.got, "status": f.status, "detail": f.detail} for f in e.failures
        ],
    }


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, ensure_ascii=False, sort_keys=True).encode("utf-8")).hexdigest()
