"""Pool behaviour: refusal without isolation, the weak opt-in, worker restarts, parallel fan-out, default pool."""

from __future__ import annotations

import os
import signal
import time

import pytest

from bdc_assistant.errors import SandboxError
from bdc_assistant.sandbox import Sandbox, SandboxLimits
from bdc_assistant.types import Status, TestCase

LIMITS = SandboxLimits(timeout_s=2.0)
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="strict isolation needs root")


def test_strict_refuses_without_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(SandboxError, match="isolation"):
        Sandbox(workers=1).start()


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


@root_only
def test_dead_worker_is_replaced_and_the_run_retried() -> None:
    with Sandbox(workers=1, limits=LIMITS) as sb:
        assert sb.run("print(1)").passed
        os.kill(sb._workers[0].proc.pid, signal.SIGKILL)
        time.sleep(0.05)
        v = sb.run("print(2)")
        assert v.passed and v.stdout == "2\n"
        assert sb.restarts == 1


@root_only
def test_run_tests_fans_out_in_parallel() -> None:
    code = "import time\ntime.sleep(0.3)\nprint(input())\n"
    tests = [TestCase(f"{i}\n", f"{i}\n") for i in range(4)]
    with Sandbox(workers=2, limits=LIMITS) as sb:
        t0 = time.monotonic()
        verdicts = sb.run_tests(code, tests)
        took = time.monotonic() - t0
    assert [v.status for v in verdicts] == [Status.PASS] * 4
    assert took < 1.1  # 4 × 0.3 s on 2 workers ≈ 0.6 s, not 1.2 s


@root_only
def test_large_stdin_and_output() -> None:
    big = "x" * 300_000
    with Sandbox(workers=1, limits=LIMITS) as sb:
        v = sb.run_tests(
            "s = input()\nprint(len(s))\nprint(s)\n", [TestCase(big + "\n", f"300000\n{big}\n")]
        )[0]
    assert v.status is Status.PASS


@root_only
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
