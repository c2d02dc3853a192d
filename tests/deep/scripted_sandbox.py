"""A sandbox double for the deep-mode bench and collect tests: runs the scripted programs by table, never by exec."""

from __future__ import annotations

import threading
from collections.abc import Callable

from bdc_assistant.types import Status, TestCase, Verdict

from .httpfakes import BAD, GOOD, HALF

ALT = "a, b = map(int, input().split())\nprint(a + b if b != 1 else a)\n"  # passes the public tests only
GOOD2 = "print(sum(map(int, input().split())))\n"  # GOOD's behaviour, other code

# what each scripted program prints for "a b"
PROGRAMS: dict[str, Callable[[int, int], int]] = {
    GOOD: lambda a, b: a + b,
    GOOD2: lambda a, b: a + b,
    HALF: lambda a, b: a + b if a < 5 else 0,
    BAD: lambda a, b: a - b,
    ALT: lambda a, b: a + b if b != 1 else a,
}


class ScriptedSandbox:
    """``run`` is the plain stdin run S* probes with (recorded in ``runs``); ``run_tests`` judges test cases.
    Thread-safe: collect judges several problems at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.runs: list[tuple[str, str]] = []

    def run(self, code: str, stdin: str = "", timeout_s: float | None = None) -> Verdict:
        with self.lock:
            self.runs.append((code, stdin))
        return self._exec(code, stdin)

    def _exec(self, code: str, stdin: str) -> Verdict:
        fn = PROGRAMS.get(code)
        if fn is None:
            return Verdict(Status.RUNTIME_ERROR, stderr="NameError")
        a, b = map(int, stdin.split())
        return Verdict(Status.PASS, stdout=f"{fn(a, b)}\n")

    def run_tests(
        self,
        code: str,
        tests: tuple[TestCase, ...],
        checker: str | None = None,
        timeout_s: float | None = None,
    ) -> list[Verdict]:
        out = []
        for t in tests:
            v = self._exec(code, t.input)
            ok = v.passed and v.stdout.strip() == t.output.strip()
            out.append(Verdict(Status.PASS if ok else Status.WRONG, stdout=v.stdout))
        return out
