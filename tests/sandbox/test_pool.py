"""Pool behaviour: level fallback and refusal, the weak opt-in, worker restarts, parallel fan-out, default pool."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bdc_assistant.errors import SandboxError
from bdc_assistant.sandbox import Sandbox, SandboxLimits, probe_isolation
from bdc_assistant.sandbox.pool import DISABLE_ENV
from bdc_assistant.types import Status, TestCase

from .conftest import require_landlock

LIMITS = SandboxLimits(timeout_s=2.0)


def _alive(pid: int) -> bool:
    """Running, not merely an unreaped zombie (an orphan's zombie waits for the host's init)."""
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return False
        if state in ("Z", "X"):
            return False
        time.sleep(0.02)
    return True


def test_strict_falls_back_to_landlock_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    abi = require_landlock()
    monkeypatch.setenv(DISABLE_ENV, "userns")
    with Sandbox(workers=1, limits=LIMITS) as sb:
        report = sb.isolation_report()
        assert report["level"] == "landlock" and report["requested"] == "strict"
        assert report["namespaces"] == [] and not report["chroot"]
        assert report["landlock"] and report["landlock_abi"] == abi and report["seccomp"]
        assert f"disabled by {DISABLE_ENV}" in report["reason"]
        assert "level=landlock" in sb.describe()
        assert sb.run("print(input())", "hi\n").stdout == "hi\n"
        v = sb.run(f"print(open({__file__!r}).read())")
        assert v.status is Status.RUNTIME_ERROR and "PermissionError" in v.stderr


def test_strict_refuses_when_nothing_can_isolate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DISABLE_ENV, "userns,landlock")
    with pytest.raises(SandboxError, match="Isolation cannot be set up") as err:
        Sandbox(workers=1).start()
    assert "user namespaces" in str(err.value) and 'isolation = "weak"' in str(err.value)
    report = probe_isolation()
    assert report["level"] is None and "Isolation cannot be set up" in report["reason"]


def test_probe_isolation_reports_the_configured_level() -> None:
    report = probe_isolation()
    assert report["requested"] == "strict"
    assert report["level"] in ("userns", "landlock"), report
    assert report["seccomp"] is True and isinstance(report["reason"], str) and report["reason"]
    if report["level"] == "userns":
        assert report["namespaces"] == ["user", "mount", "net", "ipc", "uts", "pid"]


def test_weak_mode_still_blocks_network_and_processes() -> None:
    with Sandbox(workers=1, limits=LIMITS, isolation="weak") as sb:
        assert "namespaces=no" in sb.describe()
        assert sb.run("print(input())", "hi\n").stdout == "hi\n"
        v = sb.run("import socket\nsocket.socket(socket.AF_INET)\n")
        assert v.status is Status.RUNTIME_ERROR and "Errno" in v.stderr
        v = sb.run("import os\nos.fork()\n")
        assert v.status is Status.RUNTIME_ERROR and "PermissionError" in v.stderr
        v = sb.run("import os\nprint(sorted(os.environ))\n")
        assert v.stdout.strip() == "['HOME', 'LANG', 'PATH']"


def test_dead_worker_is_replaced_and_the_run_retried() -> None:
    with Sandbox(workers=1, limits=LIMITS) as sb:
        assert sb.run("print(1)").passed
        old = sb._workers[0]
        os.kill(old.proc.pid, signal.SIGKILL)
        time.sleep(0.05)
        v = sb.run("print(2)")
        assert v.passed and v.stdout == "2\n"
        assert sb.restarts == 1
        # at the userns level the serving worker is PID 1 of its namespace and dies with the process
        # the pool started (PDEATHSIG), taking anything still running in the namespace with it
        assert not _alive(old.hello["host_pid"])


def test_run_tests_fans_out_in_parallel() -> None:
    code = "import time\ntime.sleep(0.3)\nprint(input())\n"
    tests = [TestCase(f"{i}\n", f"{i}\n") for i in range(4)]
    with Sandbox(workers=2, limits=LIMITS) as sb:
        t0 = time.monotonic()
        verdicts = sb.run_tests(code, tests)
        took = time.monotonic() - t0
    assert [v.status for v in verdicts] == [Status.PASS] * 4
    assert took < 1.1  # 4 × 0.3 s on 2 workers ≈ 0.6 s, not 1.2 s


def test_large_stdin_and_output() -> None:
    big = "x" * 300_000
    with Sandbox(workers=1, limits=LIMITS) as sb:
        v = sb.run_tests(
            "s = input()\nprint(len(s))\nprint(s)\n", [TestCase(big + "\n", f"300000\n{big}\n")]
        )[0]
    assert v.status is Status.PASS


def test_default_sandbox_uses_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    import bdc_assistant.sandbox.pool as pool

    monkeypatch.setenv("BDC_SANDBOX__WORKERS", "1")
    monkeypatch.setenv("BDC_SANDBOX__TIMEOUT_S", "1.5")
    monkeypatch.setattr(pool, "_default", None)
    sb = pool.default_sandbox()
    try:
        assert sb is pool.default_sandbox()
        assert sb.n_workers == 1 and sb.limits.timeout_s == 1.5
        assert sb.run("while True: pass").status is Status.TIMEOUT
    finally:
        sb.close()


def test_string_hashing_is_the_same_in_every_worker() -> None:
    # A set of strings prints in hash order. Each worker must hash as an interpreter with PYTHONHASHSEED=0
    # does, or the same program's output (its verdict, and a trace or failure quoted in a deep-mode prompt)
    # changes from one worker or sitting to the next. 40 strings: a random seed matching seed 0's order by
    # chance is out of the question.
    code = "print(list({f'w{i}' for i in range(40)}))"
    reference = subprocess.run(
        [sys.executable, "-S", "-c", code],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONHASHSEED": "0"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    outputs = []
    for _ in range(2):  # two pools: two zygotes started apart
        with Sandbox(workers=1, limits=LIMITS) as sb:
            outputs.append(sb.run(code).stdout)
    assert outputs == [reference, reference]
