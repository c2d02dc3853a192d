"""Turn a raw run (what the zygote saw) into a :class:`Verdict`, comparing outputs in the trusted parent.

stdin/stdout comparison (``outputs_match``), documented because every PR/AC number depends on it:

1. Identical after stripping trailing whitespace from every line and trailing blank lines → pass.
2. Otherwise both are split into whitespace-separated tokens (line breaks count as whitespace, as in
   DeepMind's code_contests ``OutputsMatch``); the counts must be equal and each pair must be
   * identical, or
   * equal ignoring case (``YES``/``yes``; Codeforces statements almost always allow any case), or
   * both numbers, at least one written with a ``.``/exponent, within ``1e-6`` absolute or relative
     (max(1, |expected|) × 1e-6). Two integer tokens must be exactly equal (no float rounding of big ints).
3. A problem with a registered checker (``checkers.py``) is judged by the checker instead.

Call-based tests: a ``check()``/``assert`` block passes when it runs to the end without an exception
(AssertionError → wrong, any other exception → runtime_error). APPS ``fn_name`` tests compare the JSON of
the returned value with the expected JSON (tuples become lists; APPS's quirk of wrapping the expected
value in a one-element list is accepted too).
"""

from __future__ import annotations

import json
import math
import re
import signal
from collections.abc import Callable
from typing import Any

from ..errors import SandboxError
from ..types import Status, TestCase, Verdict

FLOAT_TOL = 1e-6
_INT = re.compile(r"[+-]?\d+\Z")
_NUM = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\Z")


def _tokens_equal(exp: str, got: str) -> bool:
    if exp == got or exp.lower() == got.lower():
        return True
    if _INT.match(exp) and _INT.match(got):
        return int(exp) == int(got)
    if not (_NUM.match(exp) and _NUM.match(got)):
        return False
    a, b = float(exp), float(got)
    if not (math.isfinite(a) and math.isfinite(b)):
        return False
    return abs(a - b) <= FLOAT_TOL * max(1.0, abs(a))


def outputs_match(expected: str, actual: str) -> bool:
    """Whitespace- and float-tolerant comparison (see the module docstring for the exact rules)."""
    exp_lines = [line.rstrip() for line in expected.rstrip().splitlines()]
    got_lines = [line.rstrip() for line in actual.rstrip().splitlines()]
    if exp_lines == got_lines:
        return True
    exp_tokens, got_tokens = expected.split(), actual.split()
    if len(exp_tokens) != len(got_tokens):
        return False
    return all(_tokens_equal(e, g) for e, g in zip(exp_tokens, got_tokens, strict=True))


def values_match(expected_json: str, got_json: str) -> bool:
    """APPS ``fn_name`` comparison of JSON values (with APPS's one-element-list quirk)."""
    try:
        expected = json.loads(expected_json)
        got = json.loads(got_json)
    except (ValueError, TypeError):
        return False
    if got == expected:
        return True
    if isinstance(expected, list) and len(expected) == 1 and got == expected[0]:
        return True
    return _close(expected, got)


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if isinstance(a, int | float) and isinstance(b, int | float):
            return math.isclose(a, b, rel_tol=FLOAT_TOL, abs_tol=FLOAT_TOL)
        return False
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return all(_close(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _first_difference(expected: str, actual: str) -> str:
    exp, got = expected.rstrip().splitlines(), actual.rstrip().splitlines()
    for i in range(max(len(exp), len(got))):
        e = exp[i] if i < len(exp) else "<end of output>"
        g = got[i] if i < len(got) else "<end of output>"
        if e.rstrip() != g.rstrip():
            return f"line {i + 1}: expected {e[:200]!r}, got {g[:200]!r}"
    return "outputs differ in whitespace or tokens"


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


Checker = Callable[[str, str, str], bool]


def verdict_from(
    raw: dict[str, Any], test: TestCase | None, *, checker: Checker | None = None, timeout_s: float = 0.0
) -> Verdict:
    """Classify one raw run. ``test is None`` is a plain run: pass iff the program exited with status 0."""
    if "internal_error" in raw:
        raise SandboxError(f"The sandbox worker failed internally: {raw['internal_error']}.")
    markers: list[str] = raw.get("markers", [])
    stdout, stderr = raw.get("stdout", ""), raw.get("stderr", "")
    base = {
        "stdout": stdout,
        "stderr": stderr,
        "seconds": float(raw.get("wall_s", 0.0)),
        "exit_code": raw.get("exit"),
    }
    sig = raw.get("signal")
    if "ready" not in markers and raw.get("exit") == 70:
        raise SandboxError(f"The sandbox could not confine a run: {_last_line(stderr) or 'unknown error'}.")
    for marker in markers:
        if marker.endswith("_compile_error"):
            which = "the program" if marker.startswith("code") else "the test code"
            return Verdict(
                Status.COMPILE_ERROR, detail=f"{which} does not compile: {_last_line(stderr)}", **base
            )
    if raw.get("timeout") or sig == signal.SIGXCPU:
        return Verdict(Status.TIMEOUT, detail=f"exceeded the time limit of {timeout_s:g} s", **base)
    if raw.get("output_limit"):
        return Verdict(Status.RUNTIME_ERROR, detail="output limit exceeded", **base)
    if raw.get("disk_limit"):
        return Verdict(Status.RUNTIME_ERROR, detail="disk limit exceeded", **base)
    near_limit = raw.get("maxrss_kb", 0) * 1024 >= 0.75 * (raw.get("memory_mb") or 1 << 30) * (1 << 20)
    crashed = sig in (signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT)
    if "memory" in markers or sig == signal.SIGKILL or (crashed and near_limit):
        return Verdict(Status.MEMORY, detail="exceeded the memory limit", **base)
    failed_exit = sig is not None or raw.get("exit") not in (0, None)
    if test is None or test.kind == "stdio":
        if failed_exit:
            what = f"killed by signal {signal.Signals(sig).name}" if sig else f"exit status {raw.get('exit')}"
            return Verdict(Status.RUNTIME_ERROR, detail=f"{what}: {_last_line(stderr)}".rstrip(": "), **base)
        if test is None:
            return Verdict(Status.PASS, **base)
        if checker is not None:
            try:
                ok = bool(checker(test.input, test.output, stdout))
            except Exception as exc:
                return Verdict(Status.WRONG, detail=f"checker rejected the output: {exc}", **base)
            return Verdict(
                Status.PASS if ok else Status.WRONG,
                detail="" if ok else "checker rejected the output",
                **base,
            )
        if outputs_match(test.output, stdout):
            return Verdict(Status.PASS, **base)
        return Verdict(Status.WRONG, detail=_first_difference(test.output, stdout), **base)
    if test.fn_name:
        value = raw.get("value")
        if value is None or failed_exit:
            return Verdict(Status.RUNTIME_ERROR, detail=_last_line(stderr) or "no value returned", **base)
        if values_match(test.output, value):
            return Verdict(Status.PASS, **base)
        return Verdict(Status.WRONG, detail=f"expected {test.output[:200]}, got {value[:200]}", **base)
    if "ok" in markers and not failed_exit:
        return Verdict(Status.PASS, **base)
    if "test_exception AssertionError" in markers:
        return Verdict(Status.WRONG, detail=_last_line(stderr) or "an assertion failed", **base)
    return Verdict(
        Status.RUNTIME_ERROR, detail=_last_line(stderr) or "the tests did not run to the end", **base
    )
