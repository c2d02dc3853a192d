"""The app-side pool of zygote workers: start them, hand each run to an idle one, judge the result.

Each worker is ``python -s -P -S _zygote.py`` started with a scrubbed environment. ``isolation="strict"`` tries
the ``userns`` level first (user + mount + net + ipc + uts + pid namespaces, works for any user) and falls
back to the ``landlock`` level where user namespaces are unavailable; the choice and its reason are logged
and reported by :meth:`Sandbox.isolation_report` (``bdc doctor``). ``weak`` is only ever used when asked
for. As root, runs use a random unprivileged uid of their own. A worker that dies is restarted and the run
retried once (infrastructure failures are not verdicts).
"""

from __future__ import annotations

import json
import logging
import os
import random
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..errors import SandboxError
from ..types import TestCase, Verdict
from .checkers import get_checker
from .judges import verdict_from

_ZYGOTE = Path(__file__).with_name("_zygote.py")
# A fixed hash seed: a program that prints a set of strings prints it in the same order in every worker and
# every sitting, so its verdict, and an LDB trace or failure quoted in a prompt, are the same each time.
_CLEAN_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"}
# ``-s -P`` rather than ``-I``: ``-I`` also implies ``-E``, which ignores PYTHONHASHSEED (the hash seed was then
# random per worker); ``-E`` protects nothing here, as the worker's environment is exactly ``_CLEAN_ENV``.
_PYTHON_FLAGS = ("-s", "-P", "-S")
_UID_BASE, _UID_SPAN = 200_000, 1_000_000_000
Isolation = Literal["strict", "landlock", "weak"]
_LEVELS: dict[str, tuple[str, ...]] = {
    "strict": ("userns", "landlock"),
    "landlock": ("landlock",),
    "weak": ("weak",),
}
# Comma-separated mechanisms to treat as unavailable ("userns", "landlock"): how the fallback is tested on a
# machine that has both, and a way out if one of them misbehaves somewhere. It can only lower the level,
# and the level in force is always reported.
DISABLE_ENV = "BDC_SANDBOX_DISABLE"
_log = logging.getLogger("bdc.sandbox")


def _disabled() -> set[str]:
    return {part.strip() for part in os.environ.get(DISABLE_ENV, "").split(",") if part.strip()}


@dataclass(frozen=True)
class SandboxLimits:
    """Per-run limits (defaults come from the ``[sandbox]`` settings)."""

    timeout_s: float = 4.0
    memory_mb: int = 1024
    output_limit_kb: int = 1024
    scratch_mb: int = 64
    fsize_mb: int = 16
    nproc: int = 32


class _WorkerDied(Exception):
    pass


class _LevelUnavailable(Exception):
    pass


class _Worker:
    """One zygote process and its request/response pipes. Used by one thread at a time."""

    def __init__(
        self, level: str, limits: SandboxLimits, uid: int | None, seccomp: bool, landlock: bool
    ) -> None:
        self.scratch: str | None = None
        if level != "userns":  # no tmpfs of our own: a private directory on the host
            self.scratch = tempfile.mkdtemp(prefix="bdc-sandbox-")
        home = self.scratch or "/tmp"
        cfg = {
            "level": level,
            "root_uid": uid,
            "scratch_mb": limits.scratch_mb,
            "scratch_inodes": max(1024, min(limits.scratch_mb * 256, 65536)),
            "scratch": home,
            "fsize_mb": limits.fsize_mb,
            "nproc": limits.nproc,
            # RLIMIT_NPROC counts per user namespace there; elsewhere per uid, which is yours (or root's)
            "nproc_limit": level == "userns",
            "seccomp": seccomp,
            "landlock": landlock,
            "env": {"PATH": _CLEAN_ENV["PATH"], "LANG": _CLEAN_ENV["LANG"], "HOME": home},
        }
        stack = 1 << 30

        def _preexec() -> None:  # runs in the new process before exec: room for deep recursion
            _soft, hard = resource.getrlimit(resource.RLIMIT_STACK)
            want = stack if hard == resource.RLIM_INFINITY else min(stack, hard)
            resource.setrlimit(resource.RLIMIT_STACK, (want, hard))

        self.proc = subprocess.Popen(
            [sys.executable, *_PYTHON_FLAGS, str(_ZYGOTE), json.dumps(cfg)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=dict(_CLEAN_ENV),
            cwd="/",
            close_fds=True,
            preexec_fn=_preexec,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._w = self.proc.stdin.fileno()
        self._r = self.proc.stdout.fileno()
        self.hello: dict[str, Any] = self._read()

    def _read(self) -> dict[str, Any]:
        head = self._read_exact(4)
        return json.loads(self._read_exact(struct.unpack(">I", head)[0]))

    def _read_exact(self, n: int) -> bytes:
        parts = []
        while n:
            chunk = os.read(self._r, n)
            if not chunk:
                raise _WorkerDied
            parts.append(chunk)
            n -= len(chunk)
        return b"".join(parts)

    def call(self, req: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps(req).encode()
        data = memoryview(struct.pack(">I", len(body)) + body)
        try:
            while data:
                data = data[os.write(self._w, data) :]
        except (BrokenPipeError, OSError) as exc:
            raise _WorkerDied from exc
        return self._read()

    def close(self) -> None:
        try:
            if self.proc.stdin:
                self.proc.stdin.close()
            self.proc.wait(timeout=2)
        except (subprocess.TimeoutExpired, OSError):
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
        if self.scratch:
            shutil.rmtree(self.scratch, ignore_errors=True)


class Sandbox:
    """Runs untrusted code under isolation. Thread-safe; ``run_tests`` fans tests out over the workers."""

    def __init__(
        self,
        *,
        workers: int = 0,
        limits: SandboxLimits | None = None,
        isolation: Isolation = "strict",
        seccomp: bool = True,
    ) -> None:
        """``isolation="landlock"`` skips the user-namespace attempt (Python API only, for tests and
        comparisons); ``seccomp=False`` exists only so tests can exercise the process sweep behind it."""
        if isolation not in _LEVELS:
            raise SandboxError(f"Unknown sandbox isolation {isolation!r}; use strict, landlock or weak.")
        self.seccomp = seccomp
        self.limits = limits or SandboxLimits()
        self.isolation = isolation
        self.n_workers = workers or max(os.cpu_count() or 1, 1)
        self._workers: list[_Worker] = []
        self._idle: list[_Worker] = []
        self._cond = threading.Condition()
        self._started = False
        self._closed = False
        self._executor: ThreadPoolExecutor | None = None
        self.restarts = 0
        self.info: dict[str, Any] = {}
        self.level: str | None = None
        self._skipped: list[str] = []  # why the levels before ``level`` were not used

    # ---- lifecycle --------------------------------------------------------------------------------------

    def _spawn(self, level: str) -> _Worker:
        root = os.geteuid() == 0
        uid = random.randrange(_UID_BASE, _UID_BASE + _UID_SPAN) if root and level == "userns" else None
        landlock = "landlock" not in _disabled()
        try:
            worker = _Worker(level, self.limits, uid, self.seccomp, landlock)
        except _WorkerDied as exc:
            raise SandboxError("The sandbox worker exited during start-up.") from exc
        if not worker.hello.get("ok"):
            worker.close()
            raise _LevelUnavailable(str(worker.hello.get("error")))
        if level == "weak" and self.seccomp and not worker.hello.get("seccomp"):
            worker.close()
            raise SandboxError(
                "Weak isolation needs seccomp (libseccomp.so.2) to block network and new processes, and it is "
                "not available here; install libseccomp2."
            )
        return worker

    def _first_worker(self) -> _Worker:
        """Try the levels ``isolation`` allows, best first; remember the one that worked and why the
        others did not."""
        disabled = _disabled()
        for level in _LEVELS[self.isolation]:
            name = "user namespaces" if level == "userns" else level
            if level in disabled:
                self._skipped.append(f"{name}: disabled by {DISABLE_ENV}={os.environ.get(DISABLE_ENV)}")
                continue
            try:
                worker = self._spawn(level)
            except _LevelUnavailable as exc:
                self._skipped.append(f"{name}: {exc}")
                continue
            self.level = level
            return worker
        why = "; ".join(self._skipped)
        if self.isolation == "weak":
            raise SandboxError(f"The weak sandbox cannot start here ({why}).")
        raise SandboxError(
            f"Isolation cannot be set up on this machine ({why}). Allow unprivileged user namespaces "
            "(sysctl kernel.unprivileged_userns_clone=1; on Ubuntu kernel.apparmor_restrict_unprivileged_userns=0) "
            'or use a kernel with Landlock, or set sandbox.isolation = "weak" to run with rlimits and seccomp '
            "only (the program could then read and write your files)."
        )

    def start(self) -> Sandbox:
        with self._cond:
            if self._started:
                return self
            if self._closed:
                raise SandboxError("This sandbox was closed.")
            first = self._first_worker()
            assert self.level is not None
            level = self.level
            self._workers.append(first)
            errors = []
            with ThreadPoolExecutor(self.n_workers) as ex:
                futures = [ex.submit(self._spawn, level) for _ in range(self.n_workers - 1)]
                for f in futures:
                    try:
                        self._workers.append(f.result())
                    except (SandboxError, _LevelUnavailable) as exc:
                        errors.append(exc)
            if errors:
                for w in self._workers:
                    w.close()
                self._workers.clear()
                raise SandboxError(f"A sandbox worker failed to start at the {level} level: {errors[0]}.")
            self._idle = list(self._workers)
            self.info = dict(first.hello)
            self.info["isolation"] = self.isolation
            self._announce()
            self._executor = ThreadPoolExecutor(self.n_workers, thread_name_prefix="bdc-sandbox")
            self._started = True
            return self

    def _announce(self) -> None:
        if self.level == "weak":
            _log.warning(
                "Sandbox isolation is WEAK (chosen by sandbox.isolation): model-written code runs as you and "
                "CAN read and write your files; only rlimits, seccomp and a clean environment apply."
            )
        elif self.level == "landlock" and self.isolation == "strict":
            _log.warning("Sandbox at the landlock level: %s", "; ".join(self._skipped))
        if self.seccomp and not self.info.get("seccomp"):
            _log.warning(
                "seccomp is unavailable (no libseccomp.so.2): new processes are only bounded by "
                "RLIMIT_NPROC and the sweep after each run, not refused."
            )

    def close(self) -> None:
        with self._cond:
            self._closed = True
            workers, self._workers, self._idle = self._workers, [], []
            self._started = False
            executor, self._executor = self._executor, None
            self._cond.notify_all()  # runs waiting for a worker fail with SandboxError instead of hanging
        if executor:
            executor.shutdown(wait=True)
        for w in workers:
            w.close()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def isolation_report(self) -> dict[str, Any]:
        """What confinement is in force and why (``bdc doctor --json``, ``bench/sandbox.py``)."""
        self.start()
        info = self.info
        abi = int(info.get("landlock_abi") or 0)
        seccomp = bool(info.get("seccomp"))
        if self.level == "userns":
            who = f"as root, runs use uid {info.get('run_uid')}" if os.geteuid() == 0 else "your uid"
            reason = (
                f"unprivileged user namespace ({who} mapped to 0 inside, no capabilities) with mount, network, "
                "IPC, UTS and PID namespaces; chroot into a tmpfs with read-only /usr and stdlib and a "
                f"{self.limits.scratch_mb} MiB scratch"
            )
        elif self.level == "landlock":
            reason = (
                f"Landlock ABI {abi} allows reading /usr and the stdlib and writing one scratch directory; "
                "seccomp refuses new processes, every socket() and signals to other processes; no namespaces "
                "(the disk cap is a size watch, not a filesystem limit)"
            )
            if self._skipped:
                reason = "; ".join(self._skipped) + ". " + reason
        else:
            reason = (
                'chosen explicitly (sandbox.isolation = "weak"): the program runs as you and can read and '
                "write your files; rlimits, seccomp and a clean environment only"
            )
        if not seccomp:
            reason += "; NO seccomp (fork/exec/sockets not filtered)"
        return {
            "level": self.level,
            "requested": self.isolation,
            "namespaces": list(info.get("namespaces") or []),
            "pid_namespace": bool(info.get("pid_namespace")),
            "chroot": bool(info.get("chroot")),
            "seccomp": seccomp,
            "landlock": abi > 0,
            "landlock_abi": abi,
            "capabilities": info.get("caps"),
            "run_uid": info.get("run_uid"),
            "root": os.geteuid() == 0,
            "workers": self.n_workers,
            "reason": reason,
        }

    def describe(self) -> str:
        """One line for logs: what confinement is actually in force."""
        r = self.isolation_report()
        parts = [
            f"isolation={self.isolation}",
            f"level={r['level']}",
            f"workers={self.n_workers}",
            f"namespaces={','.join(r['namespaces']) or 'no'}",
            f"seccomp={'yes' if r['seccomp'] else 'NO (fork/exec/sockets not filtered)'}",
            f"landlock={r['landlock_abi'] or 'no'}",
        ]
        return ", ".join(parts)

    # ---- running ----------------------------------------------------------------------------------------

    def _acquire(self) -> _Worker:
        with self._cond:
            while not self._idle:
                if self._closed:
                    raise SandboxError("The sandbox was closed while a run was waiting.")
                self._cond.wait()
            return self._idle.pop()

    def _release(self, worker: _Worker) -> None:
        with self._cond:
            if worker in self._workers:
                self._idle.append(worker)
                self._cond.notify()

    def _replace(self, worker: _Worker) -> _Worker:
        worker.close()
        if self._closed:
            raise SandboxError("The sandbox was closed while a run was in flight.")
        assert self.level is not None
        try:
            fresh = self._spawn(self.level)
        except _LevelUnavailable as exc:
            raise SandboxError(
                f"A sandbox worker could not be restarted at the {self.level} level: {exc}."
            ) from exc
        with self._cond:
            self.restarts += 1
            self._workers = [fresh if w is worker else w for w in self._workers]
        return fresh

    def _execute(self, req: dict[str, Any]) -> dict[str, Any]:
        self.start()
        worker = self._acquire()
        try:
            for attempt in range(2):
                try:
                    return worker.call(req)
                except _WorkerDied:
                    worker = self._replace(worker)
                    if attempt:
                        raise SandboxError("The sandbox worker died twice on the same run.") from None
            raise AssertionError("unreachable")
        finally:
            self._release(worker)

    def _request(self, code: str, timeout_s: float, **extra: Any) -> dict[str, Any]:
        return {
            "code": code,
            "timeout_s": timeout_s,
            "memory_mb": self.limits.memory_mb,
            "output_limit": self.limits.output_limit_kb * 1024,
            "mode": "stdio",
            "stdin": "",
            **extra,
        }

    def run(self, code: str, stdin: str = "", timeout_s: float | None = None) -> Verdict:
        """Run ``code`` once with ``stdin``; status is pass iff it exits with status 0."""
        t = timeout_s or self.limits.timeout_s
        raw = self._execute(self._request(code, t, stdin=stdin))
        return verdict_from(raw, None, timeout_s=t)

    def run_test(
        self, code: str, test: TestCase, *, timeout_s: float | None = None, checker: str | None = None
    ) -> Verdict:
        t = timeout_s or self.limits.timeout_s
        if test.kind == "stdio":
            req = self._request(code, t, stdin=test.input)
        elif test.fn_name:
            req = self._request(code, t, mode="fn", fn_name=test.fn_name, args=test.input)
        else:
            req = self._request(code, t, mode="call", test=test.input)
        raw = self._execute(req)
        return verdict_from(raw, test, checker=get_checker(checker), timeout_s=t)

    def run_tests(
        self,
        code: str,
        tests: Sequence[TestCase],
        *,
        timeout_s: float | None = None,
        checker: str | None = None,
    ) -> list[Verdict]:
        """Run ``code`` on every test (in parallel over the workers); verdicts in test order."""
        get_checker(checker)  # unknown checker names fail before anything runs
        self.start()
        if len(tests) <= 1 or self.n_workers == 1 or self._executor is None:
            return [self.run_test(code, t, timeout_s=timeout_s, checker=checker) for t in tests]
        futures = [
            self._executor.submit(self.run_test, code, t, timeout_s=timeout_s, checker=checker) for t in tests
        ]
        return [f.result() for f in futures]


def probe_isolation(settings: Any | None = None) -> dict[str, Any]:
    """Start one worker as configured, report the isolation it achieved, stop it. Never raises for a
    machine that cannot isolate: ``level`` is None and ``reason`` says why."""
    configured = sandbox_from_settings(settings)
    box = Sandbox(workers=1, limits=configured.limits, isolation=configured.isolation)
    try:
        with box:
            return box.isolation_report()
    except SandboxError as exc:
        return {
            "level": None,
            "requested": configured.isolation,
            "namespaces": [],
            "seccomp": False,
            "landlock": False,
            "reason": str(exc),
        }


_default: Sandbox | None = None
_default_lock = threading.Lock()


def sandbox_from_settings(settings: Any | None = None) -> Sandbox:
    """A new (not yet started) sandbox configured from the ``[sandbox]`` settings."""
    if settings is None:
        from ..config import load_settings

        settings = load_settings()
    s = settings.sandbox
    limits = SandboxLimits(
        timeout_s=s.timeout_s,
        memory_mb=s.memory_mb,
        output_limit_kb=s.output_limit_kb,
        scratch_mb=s.scratch_mb,
        nproc=s.nproc,
    )
    return Sandbox(workers=s.workers, limits=limits, isolation=s.isolation)


def default_sandbox() -> Sandbox:
    """The process-wide pool, started on first use and closed at exit."""
    global _default
    with _default_lock:
        if _default is None or _default._closed:
            import atexit

            _default = sandbox_from_settings()
            atexit.register(_default.close)
        return _default
