"""A warm "zygote" worker: set up isolation once, then fork one confined child per run.

This file is a standalone stdlib-only script. The app starts it as ``python -s -P -S _zygote.py CONFIG_JSON``
with a scrubbed environment (``PYTHONHASHSEED=0`` in it); it never imports bdc_assistant, only its sibling
modules ``_confine`` and ``_seccomp`` (loaded before anything is hidden). Nothing here runs candidate code:
every run is a ``fork()`` child that confines itself before it touches the candidate's code.
``sandbox/__init__.py`` says what this protects against and what it does not.

Levels (``cfg["level"]``, chosen by the pool):

* ``userns``: this process enters fresh user/mount/net/ipc/uts/pid namespaces, builds the sandbox root and
  forks the serving worker, which is PID 1 of the new PID namespace, chroots, drops every capability and
  serves runs; this process only waits for it (and takes it down by PDEATHSIG if it is killed itself).
* ``landlock``: no namespaces; each run child applies a Landlock ruleset built once here.
* ``weak``: rlimits, seccomp and a scrubbed environment only.

Protocol on fds 0 (requests) and 1 (responses): 4-byte big-endian length + UTF-8 JSON, one response per
request. The first message the zygote writes is a handshake describing what isolation it achieved.
"""

from __future__ import annotations

# ruff: noqa: E402, I001, SIM105, SIM115  (deliberate pre-imports; a standalone script that must not raise)
import builtins
import ctypes
import errno
import gc
import io
import json
import os
import resource
import select
import signal
import struct
import sys
import time
import traceback

# Modules competitive / benchmark code commonly imports: pre-imported so each fork starts warm.
import array  # noqa: F401
import atexit
import bisect  # noqa: F401
import collections  # noqa: F401
import copy  # noqa: F401
import dataclasses  # noqa: F401
import datetime  # noqa: F401
import decimal  # noqa: F401
import enum  # noqa: F401
import fractions  # noqa: F401
import functools  # noqa: F401
import hashlib  # noqa: F401
import heapq  # noqa: F401
import itertools  # noqa: F401
import linecache
import math  # noqa: F401
import operator  # noqa: F401
import queue  # noqa: F401
import random
import re  # noqa: F401
import statistics  # noqa: F401
import string  # noqa: F401
import threading
import typing

if typing.TYPE_CHECKING:
    from . import _confine, _seccomp
else:  # run as a script with -I: the sibling modules are not on sys.path, and must not stay there
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import _confine
    import _seccomp

    del sys.path[0]

EXIT_INTERNAL = 70  # the child failed before running candidate code
ROOT = "/tmp"  # userns level: where the sandbox root is mounted (in our private mount namespace)
THREAD_STACK = 8 << 20  # what a fresh python3 gets under the usual 8 MiB stack limit

# `python -S` skips site, which is what normally installs exit()/quit()/help(); programs use them.
import _sitebuiltins

builtins.exit = _sitebuiltins.Quitter("exit", "Ctrl-D (i.e. EOF)")  # type: ignore[attr-defined]
builtins.quit = _sitebuiltins.Quitter("quit", "Ctrl-D (i.e. EOF)")  # type: ignore[attr-defined]
builtins.help = _sitebuiltins._Helper()  # type: ignore[attr-defined]


class Confinement:
    """What every run child applies to itself, prepared once per worker."""

    def __init__(self) -> None:
        self.seccomp: _seccomp.Seccomp | None = None
        self.main_filter: _seccomp.Filter | None = None
        self.ruleset: int | None = None


# ---- protocol --------------------------------------------------------------------------------------------


def _read_exact(fd: int, n: int) -> bytes | None:
    chunks = []
    while n:
        chunk = os.read(fd, n)
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def read_msg(fd: int) -> dict | None:
    head = _read_exact(fd, 4)
    if head is None:
        return None
    body = _read_exact(fd, struct.unpack(">I", head)[0])
    return None if body is None else json.loads(body)


def write_msg(fd: int, msg: dict) -> None:
    body = json.dumps(msg).encode()
    data = struct.pack(">I", len(body)) + body
    while data:
        n = os.write(fd, data)
        data = data[n:]


# ---- the child --------------------------------------------------------------------------------------------


def _std_streams() -> None:
    """Fresh std streams on fds 0/1/2, opened like a fresh interpreter's (not a tty: block-buffered,
    with the ``mode`` attribute some fast-IO templates read)."""
    sys.stdin = sys.__stdin__ = io.open(0, "r", encoding="utf-8", closefd=False)  # type: ignore[misc]  # noqa: UP020
    sys.stdout = sys.__stdout__ = io.open(1, "w", encoding="utf-8", closefd=False)  # type: ignore[misc]  # noqa: UP020
    sys.stderr = sys.__stderr__ = open(  # type: ignore[misc]
        2,
        "w",
        encoding="utf-8",
        errors="backslashreplace",
        closefd=False,
    )
    sys.stderr.reconfigure(line_buffering=True)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            if stream is not None:
                stream.flush()
        except BaseException:
            pass


def _report(nonce: str, text: str) -> None:
    try:
        os.write(3, f"{nonce} {text}\n".encode())
    except OSError:
        pass


def _exit_code(exc: SystemExit) -> int:
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    try:
        print(code, file=sys.stderr)
    except BaseException:
        pass
    return 1


def _run_phase(nonce: str, phase: str, source: str, filename: str, g: dict) -> int | None:
    """Compile and exec one piece of code; None on success, else the exit status to use."""
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    try:
        code = compile(source, filename, "exec")
    except (SyntaxError, ValueError, OverflowError, RecursionError, MemoryError):
        _report(nonce, f"{phase}_compile_error")
        traceback.print_exc(limit=0)
        return 1
    try:
        exec(code, g)
    except SystemExit as exc:
        status = _exit_code(exc)
        if phase == "test" and status == 0:
            _report(nonce, "test_exit")  # a test block that exits early did not finish its asserts
            return 1
        return status
    except MemoryError:
        _report(nonce, "memory")
        sys.stderr.write("MemoryError\n")
        return 1
    except BaseException as exc:
        _report(nonce, f"{phase}_exception {type(exc).__name__}")
        traceback.print_exc()
        return 1
    return None


def _shutdown(g: dict, status: int) -> None:
    """Emulate CPython's interpreter shutdown order so buffered writers and atexit hooks behave as in a
    fresh ``python3 prog.py``: join threads, atexit, flush, drop the module's data newest-first."""
    try:
        threading._shutdown()  # type: ignore[attr-defined]
    except BaseException:
        pass
    try:
        atexit._run_exitfuncs()
    except BaseException:
        pass
    _flush()
    try:
        for key in reversed(list(g)):
            value = g[key]
            if not (callable(value) or isinstance(value, type(sys))) and not key.startswith("__"):
                del g[key]
        gc.collect()
        g.clear()
        gc.collect()
    except BaseException:
        pass
    _flush()
    os._exit(status)


def _limit(res: int, soft: int, hard: int) -> None:
    """Set a limit, never above an existing hard limit (a container may impose a lower one)."""
    _, cur_hard = resource.getrlimit(res)
    if cur_hard != resource.RLIM_INFINITY:
        soft, hard = min(soft, cur_hard), min(hard, cur_hard)
    resource.setrlimit(res, (soft, hard))


def _install(flt: _seccomp.Filter) -> None:
    if _confine.libc.prctl(_confine.PR_SET_SECCOMP, _confine.SECCOMP_MODE_FILTER, flt.address(), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "seccomp filter refused")


def child(req: dict, fds: dict, cfg: dict, conf: Confinement, nonce: str) -> None:
    """The forked child: confine, then run the candidate. Never returns."""
    try:
        os.setsid()
        os.dup2(fds["stdin"], 0)
        os.dup2(fds["out"], 1)
        os.dup2(fds["err"], 2)
        os.dup2(fds["res"], 3)
        mem = int(req["memory_mb"]) << 20
        cpu = int(req["timeout_s"]) + 2
        _limit(resource.RLIMIT_CORE, 0, 0)
        _limit(resource.RLIMIT_CPU, cpu, cpu + 1)
        _limit(resource.RLIMIT_FSIZE, cfg["fsize_mb"] << 20, cfg["fsize_mb"] << 20)
        _limit(resource.RLIMIT_NOFILE, 64, 64)
        if cfg["nproc_limit"]:  # counted per user namespace, or for a uid of our own: never your processes
            _limit(resource.RLIMIT_NPROC, cfg["nproc"], cfg["nproc"])
        _limit(resource.RLIMIT_STACK, mem, mem)
        _limit(resource.RLIMIT_AS, mem, mem)
        pid_filter = conf.seccomp.pid_filter(os.getpid()) if conf.main_filter and conf.seccomp else None
        _confine.prctl(_confine.PR_SET_NO_NEW_PRIVS, 1)
        if conf.ruleset is not None:
            _confine.landlock_restrict(conf.ruleset)
        if conf.main_filter is not None and pid_filter is not None:
            _install(conf.main_filter)
            _install(pid_filter)
        os.closerange(4, 1 << 16)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        threading.stack_size(THREAD_STACK)
        _std_streams()
        random.seed()
        sys.argv = ["solution.py"]
        sys.setrecursionlimit(1000)
        os.environ.clear()
        os.environ.update(cfg["env"])
    except BaseException:
        try:
            os.write(2, ("sandbox setup failed: " + traceback.format_exc()).encode())
        except BaseException:
            pass
        os._exit(EXIT_INTERNAL)
    _report(nonce, "ready")
    g: dict = {"__name__": "__main__", "__builtins__": builtins, "__file__": "solution.py"}
    status = _run_phase(nonce, "code", req["code"], "solution.py", g)
    if status is None and req["mode"] == "call":
        status = _run_phase(nonce, "test", req["test"], "test.py", g)
        if status is None:
            _report(nonce, "ok")
    elif status is None and req["mode"] == "fn":
        status = _call_fn(nonce, req, g)
    _shutdown(g, status or 0)


def _call_fn(nonce: str, req: dict, g: dict) -> int | None:
    """APPS ``fn_name`` test: call the function (or ``Solution().fn_name``) with the JSON arguments and
    send back the JSON of the result; the trusted parent compares it with the expected value."""
    name = req["fn_name"]
    try:
        args = json.loads(req["args"])
        if not isinstance(args, list):
            args = [args]
        if name in g and callable(g[name]):
            fn = g[name]
        elif "Solution" in g:
            fn = getattr(g["Solution"](), name)
        else:
            _report(nonce, "code_exception NameError")
            sys.stderr.write(f"NameError: the program defines no function {name!r}\n")
            return 1
        result = fn(*args)
        if isinstance(result, tuple):
            result = list(result)
        _report(nonce, "value " + json.dumps(result))
    except SystemExit as exc:
        return _exit_code(exc) or 1
    except MemoryError:
        _report(nonce, "memory")
        return 1
    except BaseException as exc:
        _report(nonce, f"code_exception {type(exc).__name__}")
        traceback.print_exc()
        return 1
    return None


def _set_nonblock(fd: int) -> None:
    os.set_blocking(fd, False)


def _drain(fd: int, buf: bytearray, cap: int) -> bool:
    """Read what is available; return False on EOF."""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return True
        if not chunk:
            return False
        room = cap - len(buf)
        buf += chunk[: max(room, 0) + 1]
        if len(buf) > cap:
            return True


def _children() -> list[int]:
    """Our own children (the zygote is single-threaded), orphans of earlier runs included: we are their
    subreaper."""
    try:
        with open(f"/proc/self/task/{os.getpid()}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def _sweep(cfg: dict) -> int:
    """Kill and reap whatever a run left behind (with seccomp nothing can be: fork is refused).

    As PID 1 of the run's PID namespace, kill(-1) reaches every process in it but us. Elsewhere the
    zygote is a child subreaper, so every descendant of a run ends up as our child: kill those by pid (an
    unreaped child's pid cannot have been reused)."""
    swept = 0
    deadline = time.monotonic() + 2.0
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return swept
        if pid:
            continue
        swept += 1
        if cfg["pid1"]:
            try:
                os.kill(-1, signal.SIGKILL)
            except OSError:
                pass
        else:
            for stray in _children():
                try:
                    os.kill(stray, signal.SIGKILL)
                except OSError:
                    pass
        if time.monotonic() > deadline:
            return swept
        time.sleep(0.001)


def _disk_over(path: str, max_bytes: int, max_inodes: int) -> bool:
    """Landlock level (no tmpfs of our own): is the scratch directory over its size or inode budget?"""
    used, inodes = 0, 0
    stack = [path]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            inodes += 1
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            used += st.st_blocks * 512
            if entry.is_dir(follow_symlinks=False):
                stack.append(entry.path)
            if used > max_bytes or inodes > max_inodes:
                return True
    return False


def _clean_scratch(path: str, mode: int) -> None:
    """Empty the scratch directory whatever a run did to it (chmod 000 directories, a chain thousands of
    levels deep): every subdirectory is moved up to the top before it is emptied, so no path grows long and
    nothing recurses. ``mode`` restores the scratch's own permissions."""
    try:
        os.chmod(path, mode)
    except OSError:
        pass
    pending = [path]
    made: list[str] = []
    n = 0
    while pending:
        d = pending.pop()
        try:
            if d != path:
                os.chmod(d, 0o700)
            entries = list(os.scandir(d))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    if d == path:
                        target = entry.path
                    else:
                        n += 1
                        target = os.path.join(path, f".bdc-clean-{n}")
                        os.rename(entry.path, target)
                    pending.append(target)
                    made.append(target)
                else:
                    os.unlink(entry.path)
            except OSError:
                pass
    for d in reversed(made):
        try:
            os.rmdir(d)
        except OSError:
            pass


def handle(req: dict, cfg: dict, conf: Confinement) -> dict:
    cap = int(req["output_limit"])
    timeout = float(req["timeout_s"])
    stdin_fd = os.memfd_create("stdin", 0)
    data = req.get("stdin", "").encode("utf-8", "surrogateescape")
    view = memoryview(data)
    while view:
        view = view[os.write(stdin_fd, view) :]
    os.lseek(stdin_fd, 0, os.SEEK_SET)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    res_r, res_w = os.pipe()
    nonce = os.urandom(8).hex()
    gc.freeze()
    watch_disk = cfg["level"] == "landlock"
    disk_bytes, disk_inodes = cfg["scratch_mb"] << 20, cfg["scratch_inodes"]
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        child(req, {"stdin": stdin_fd, "out": out_w, "err": err_w, "res": res_w}, cfg, conf, nonce)
        os._exit(EXIT_INTERNAL)
    for fd in (stdin_fd, out_w, err_w, res_w):
        os.close(fd)
    pidfd = os.pidfd_open(pid)
    bufs = {out_r: bytearray(), err_r: bytearray(), res_r: bytearray()}
    caps = {out_r: cap, err_r: cap, res_r: 1 << 20}
    for fd in bufs:
        _set_nonblock(fd)
    poller = select.poll()
    for fd in (*bufs, pidfd):
        poller.register(fd, select.POLLIN)
    open_fds = set(bufs)
    timed_out = over_limit = disk_limit = exited = False
    while not exited:
        remaining = start + timeout - time.monotonic()
        if remaining <= 0:
            timed_out = True
            break
        wait = min(remaining, 0.01) if watch_disk else remaining
        for fd, _ in poller.poll(wait * 1000):
            if fd == pidfd:
                exited = True
            elif fd in open_fds:
                if not _drain(fd, bufs[fd], caps[fd]):
                    open_fds.discard(fd)
                    poller.unregister(fd)
                if len(bufs[fd]) > caps[fd]:
                    over_limit = True
        if over_limit:
            break
        if watch_disk and not exited and _disk_over(cfg["scratch"], disk_bytes, disk_inodes):
            disk_limit = True
            break
    wall = time.monotonic() - start
    # Kill the run's whole process group while the child (maybe a zombie) is unreaped: its pid, and so the
    # group id, cannot have been reused by an unrelated process yet.
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass
    if not exited:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    _, status, ru = os.wait4(pid, 0)
    for fd in list(open_fds):
        _drain(fd, bufs[fd], caps[fd])
    strays = _sweep(cfg)
    for fd in (*bufs, pidfd):
        os.close(fd)
    _clean_scratch(cfg["scratch"], 0o1777 if cfg["level"] == "userns" else 0o700)
    markers = []
    value = None
    for line in bytes(bufs[res_r]).decode("utf-8", "replace").splitlines():
        tag, _, rest = line.partition(" ")
        if tag != nonce:
            continue
        if rest.startswith("value "):
            value = rest[6:]
        else:
            markers.append(rest)
    return {
        "exit": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
        "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
        "timeout": timed_out,
        "output_limit": over_limit,
        "disk_limit": disk_limit,
        "stdout": bytes(bufs[out_r][:cap]).decode("utf-8", "replace"),
        "stderr": bytes(bufs[err_r][:cap]).decode("utf-8", "replace"),
        "markers": markers,
        "value": value,
        "cpu_s": ru.ru_utime + ru.ru_stime,
        "maxrss_kb": ru.ru_maxrss,
        "memory_mb": req["memory_mb"],
        "wall_s": wall,
        "strays": strays,
    }


# ---- set-up ------------------------------------------------------------------------------------------------


def _userns(cfg: dict, hello: dict, req_fd: int, resp_fd: int) -> None:
    """Enter the namespaces and build the root here, then fork the serving worker; only that worker (PID 1
    of the new PID namespace, chrooted) returns. This process waits for it and exits with it."""
    dirs, links = _confine.system_paths(sys.path)
    _confine.enter_userns(cfg.get("root_uid"))
    sources = _confine.open_sources(dirs)
    _confine.become_ns_root()
    _confine.build_root(ROOT, sources, links, cfg["scratch_mb"])
    life_r, life_w = os.pipe()
    pid = os.fork()
    if pid:
        os.close(req_fd)
        os.close(resp_fd)
        os.close(life_r)
        try:
            _confine.drop_capabilities()
        except OSError:
            pass
        _, status = os.waitpid(pid, 0)
        os._exit(1 if os.waitstatus_to_exitcode(status) else 0)
    os.close(life_w)
    _confine.prctl(_confine.PR_SET_PDEATHSIG, signal.SIGKILL)
    if select.select([life_r], [], [], 0)[0]:  # EOF: the outer process died before we could follow it
        os._exit(1)
    os.close(life_r)
    hello["host_pid"] = int(os.readlink("/proc/self"))  # the host's /proc, until the chroot below
    _confine.enter_root(ROOT)
    hello.update(namespaces=list(_confine.NAMESPACES), pid_namespace=os.getpid() == 1, chroot=True)
    cfg["pid1"] = os.getpid() == 1
    cfg["scratch"] = "/tmp"


def _prepare(cfg: dict, hello: dict, req_fd: int, resp_fd: int) -> Confinement:
    conf = Confinement()
    level = cfg["level"]
    conf.seccomp = _seccomp.load() if cfg["seccomp"] else None
    abi = _confine.landlock_abi() if cfg["landlock"] else 0
    if level == "userns":
        _userns(cfg, hello, req_fd, resp_fd)
    else:
        if level == "landlock" and ((cfg["seccomp"] and conf.seccomp is None) or abi < 1):
            missing = "Landlock (kernel 5.13+)" if abi < 1 else "seccomp (libseccomp.so.2)"
            raise OSError(errno.ENOSYS, f"the landlock level needs {missing}, which is not available")
        os.chdir(cfg["scratch"])
        _confine.prctl(_confine.PR_SET_CHILD_SUBREAPER, 1)
    if conf.seccomp is not None:
        conf.main_filter = conf.seccomp.main_filter(level, abi)
        conf.seccomp.pid_filter(os.getpid())  # resolves its syscall numbers once, for every child
    hello["seccomp"] = conf.main_filter is not None
    if abi and level != "weak":
        devices = [d for d in ("/dev/" + n for n in _confine.DEVICES) if os.path.exists(d)]
        if level == "userns":  # inside the chroot: a second fence behind the read-only mounts
            conf.ruleset = _confine.landlock_ruleset(abi, ["/"], ["/tmp"], devices, execute=True)
        else:
            dirs, _ = _confine.system_paths(sys.path)
            conf.ruleset = _confine.landlock_ruleset(abi, dirs, [cfg["scratch"]], devices)
        hello["landlock_abi"] = abi
    if level != "weak":
        # userns: the namespace's capabilities, no longer needed. landlock as root: uid 0 stays (a
        # pyenv stdlib under /root must stay readable) but without a single capability, and Landlock
        # decides what it may touch
        hello["caps"] = _confine.drop_capabilities()
    return conf


def main() -> None:
    cfg = json.loads(sys.argv[1])
    req_fd, resp_fd = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in the app's terminal is the app's to handle
    threading.stack_size(THREAD_STACK)  # the 1 GiB main-thread stack limit must not become every thread's
    cfg["pid1"] = False
    hello: dict = {
        "ok": True,
        "level": cfg["level"],
        "namespaces": [],
        "pid_namespace": False,
        "chroot": False,
        "seccomp": False,
        "landlock_abi": 0,
        "caps": None,
        # the host uid runs use: as root at the userns level a uid of our own, else yours
        "run_uid": cfg.get("root_uid") or os.getuid(),
        "host_pid": os.getpid(),
    }
    try:
        conf = _prepare(cfg, hello, req_fd, resp_fd)
    except OSError as exc:
        write_msg(resp_fd, {"ok": False, "level": cfg["level"], "error": str(exc)})
        os._exit(0)
    gc.collect()
    gc.freeze()
    write_msg(resp_fd, hello)
    while True:
        req = read_msg(req_fd)
        if req is None:
            os._exit(0)
        try:
            resp = handle(req, cfg, conf)
        except Exception as exc:
            resp = {"internal_error": f"{type(exc).__name__}: {exc}"}
        write_msg(resp_fd, resp)


if __name__ == "__main__":
    main()
