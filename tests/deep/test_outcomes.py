"""Sandbox outcomes recorded for deep-bench replays (:mod:`bdc_assistant.deep.outcomes`): the first machine
to run a program decides what every later sitting sees, even where a slower machine would time out; keys
change with the program, the tests, the time limit and the sandbox's limits; records travel in cache-export
files next to the responses, and a file from before outcomes existed still imports."""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bdc_assistant.deep.bench import private_score
from bdc_assistant.deep.evaluate import SandboxEvaluator
from bdc_assistant.deep.outcomes import OutcomeRecord, RecordedEvaluator, recorded, sandbox_limits
from bdc_assistant.deep.search import Evaluation, Failure, PublicProblem
from bdc_assistant.errors import StoreError
from bdc_assistant.sandbox.pool import SandboxLimits
from bdc_assistant.store.cache_io import Counts, export_cache, import_cache
from bdc_assistant.store.runs import RunStore
from bdc_assistant.types import Problem, Status, TestCase, Verdict

TESTS = (TestCase("1 2\n", "3\n"), TestCase("500000 1\n", "500000\n"))


@dataclass
class Machine:
    """A scripted evaluator: what one machine's sandbox says. ``slow`` turns every failure into a timeout,
    as a CPU too slow for the time limit would; ``calls`` counts the programs it really ran."""

    slow: bool = False
    tests: tuple[TestCase, ...] = TESTS
    checker: str | None = None
    timeout_s: float | None = None
    call: bool = False
    calls: list[str] = field(default_factory=list)

    def evaluate(self, code: str) -> Evaluation:
        self.calls.append(f"evaluate {code}")
        status = "timeout" if self.slow else "wrong"
        return Evaluation(
            0.5,
            ("pass", status),
            (Failure(1, TESTS[1].input, TESTS[1].output, "" if self.slow else "0\n", status, "d"),),
        )

    def trace(self, code: str, failure: Failure) -> str:
        self.calls.append(f"trace {code} {failure.index}")
        return "(no trace: timeout)" if self.slow else "[block 0] n = 500000"

    def probe(self, code: str, inputs: list[str]) -> tuple[str, ...]:
        self.calls.append(f"probe {code}")
        return tuple("timeout" if self.slow else f"ok:{i}" for i in inputs)


@pytest.fixture
def store(tmp_path: Path) -> RunStore:
    return RunStore(tmp_path / "a.sqlite3")


def _everything(ev: RecordedEvaluator, code: str = "print(0)") -> tuple[object, ...]:
    e = ev.evaluate(code)
    return e, ev.trace(code, e.failures[0]), ev.probe(code, ["1 1\n", "2 2\n"])


def test_a_slower_machine_replays_what_the_first_machine_saw(store: RunStore) -> None:
    fast, slow = Machine(), Machine(slow=True)
    first = _everything(RecordedEvaluator(fast, OutcomeRecord(store)))
    record = OutcomeRecord(store)
    again = _everything(RecordedEvaluator(slow, record))
    assert again == first  # failures rebuilt with the test's own input and expected output
    evaluation = first[0]
    assert isinstance(evaluation, Evaluation)
    assert (evaluation.failures[0].input, evaluation.failures[0].got) == ("500000 1\n", "0\n")
    assert slow.calls == [] and record.counts() == {"recalled": 3, "recorded": 0}
    assert len(fast.calls) == 3
    # without a record the slow machine says something else: that is what the record protects against
    elsewhere = OutcomeRecord(RunStore(store.path.with_name("b.sqlite3")))
    assert _everything(RecordedEvaluator(slow, elsewhere)) != first


def test_keys_change_with_the_program_the_tests_the_limit_and_the_sandbox(store: RunStore) -> None:
    m = Machine()
    RecordedEvaluator(m, OutcomeRecord(store)).evaluate("print(0)")
    variants = [
        (Machine(), {}, "print(1)"),  # another program
        (Machine(tests=(TESTS[0], TestCase("500000 1\n", "500001\n"))), {}, "print(0)"),  # another test
        (Machine(timeout_s=8.0), {}, "print(0)"),  # another time limit
        (Machine(checker="float"), {}, "print(0)"),  # another checker
        (Machine(), {"memory_mb": 256}, "print(0)"),  # another sandbox
    ]
    for machine, limits, code in variants:
        RecordedEvaluator(machine, OutcomeRecord(store, limits)).evaluate(code)
        assert machine.calls == [f"evaluate {code}"]
    same = Machine()
    RecordedEvaluator(same, OutcomeRecord(store)).evaluate("print(0)")
    assert same.calls == []


def test_blank_code_is_not_recorded_and_no_record_means_the_evaluator_itself(store: RunStore) -> None:
    record = OutcomeRecord(store)
    inner = SandboxEvaluator(sandbox=None, problem=PublicProblem("p", "s", TESTS))
    assert recorded(inner, None) is inner
    assert RecordedEvaluator(inner, record).evaluate("  \n").statuses == ("compile_error", "compile_error")
    assert record.counts() == {"recalled": 0, "recorded": 0}


class CountingSandbox:
    limits = SandboxLimits()

    def __init__(self) -> None:
        self.runs = 0

    def run_tests(self, code: str, tests: object, *, checker: str | None = None) -> list[Verdict]:
        self.runs += 1
        return [Verdict(Status.PASS), Verdict(Status.TIMEOUT), Verdict(Status.PASS), Verdict(Status.WRONG)]


def test_private_scores_are_recorded_under_the_private_tests(store: RunStore) -> None:
    problem = Problem(
        id="p",
        statement="s",
        public_tests=(TESTS[0],),
        private_tests=tuple(TestCase(str(i)) for i in range(4)),
    )
    box = CountingSandbox()
    assert sandbox_limits(box)["timeout_s"] == 4.0
    assert sandbox_limits(object()) == {} and sandbox_limits(SandboxLimits) == {}  # a double; a class
    record = OutcomeRecord(store, sandbox_limits(box))
    assert private_score(box, problem, "print(1)", record) == 0.5
    assert private_score(box, problem, "print(1)", record) == 0.5
    assert box.runs == 1 and record.counts() == {"recalled": 1, "recorded": 1}
    assert private_score(box, problem, "print(2)", record) == 0.5 and box.runs == 2


def test_outcomes_travel_in_cache_files_and_old_files_still_import(store: RunStore, tmp_path: Path) -> None:
    fast = Machine()
    first = _everything(RecordedEvaluator(fast, OutcomeRecord(store)))
    out = tmp_path / "c.jsonl.gz"
    assert export_cache(store, out) == Counts(responses=0, outcomes=3)
    with gzip.open(out, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    assert {r["table"] for r in rows} == {"sandbox_outcomes"} and {r["op"] for r in rows} == {
        "evaluate",
        "trace",
        "probe",
    }
    b = RunStore(tmp_path / "b.sqlite3")
    assert import_cache(b, out) == (Counts(0, 3), Counts(0, 0))
    assert import_cache(b, out) == (Counts(0, 0), Counts(0, 3))
    slow = Machine(slow=True)
    assert _everything(RecordedEvaluator(slow, OutcomeRecord(b))) == first and slow.calls == []
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"table": "users", "key": "a" * 64}) + "\n")
    with pytest.raises(StoreError, match="unknown table 'users'; nothing was imported"):
        import_cache(b, bad)
    bad.write_text(json.dumps({"table": "sandbox_outcomes", "key": "a" * 64, "op": "trace"}) + "\n")
    with pytest.raises(StoreError, match="lacks value; nothing was imported"):
        import_cache(b, bad)
