"""A warm "zygote" worker: set up isolation once, then fork one confined child per run.

This file is a standalone stdlib-only script. The app starts it as ``python -I -S _zygote.py CONFIG_JSON``
with a scrubbed environment; it never imports bdc_assistant (the repo is hidden from it once it is set up).
The zygote itself stays root (when started as root) and never runs candidate code; every run is a
``fork()`` child that drops privileges before touching the candidate's code. See ``sandbox/__init__.py`` for
what this protects against and what it does not.

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
import typing  # noqa: F401

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWNET = 0x40000000
CLONE_THREAD = 0x00010000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
PR_SET_SECCOMP, PR_SET_NO_NEW_PRIVS, PR_SET_CHILD_SUBREAPER = 22, 38, 36
SECCOMP_MODE_FILTER = 2
SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_CMP_NE, SCMP_CMP_MASKED_EQ = 1, 7
AF_UNIX = 1

EXIT_INTERNAL = 70  # the child failed before running candidate code

# `python -S` skips site, which is what normally installs exit()/quit()/help(); programs use them.
import _sitebuiltins

builtins.exit = _sitebuiltins.Quitter("exit", "Ctrl-D (i.e. EOF)")  # type: ignore[attr-defined]
builtins.quit = _sitebuiltins.Quitter("quit", "Ctrl-D (i.e. EOF)")  # type: ignore[attr-defined]
builtins.help = _sitebuiltins._Helper()  # type: ignore[attr-defined]

_libc = ctypes.CDLL(None, use_errno=True)
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.unshare.argtypes = [ctypes.c_int]


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("a", ctypes.c_uint64), ("b", ctypes.c_uint64)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _errno_action(code: int) -> int:
    return 0x00050000 | (code & 0xFFFF)


_DENY_EPERM = (
    "fork",
    "vfork",
    "execve",
    "execveat",
    "ptrace",
    "mount",
    "umount2",
    "unshare",
    "setns",
    "pivot_root",
    "chroot",
    "bpf",
    "perf_event_open",
    "keyctl",
    "add_key",
    "request_key",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "userfaultfd",
    "process_vm_readv",
    "process_vm_writev",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "open_by_handle_at",
    "name_to_handle_at",
    "fanotify_init",
    "move_mount",
    "fsopen",
    "fsmount",
    "open_tree",
    "mount_setattr",
    "pidfd_getfd",
    "process_madvise",
    "quotactl",
)


def build_seccomp() -> tuple[object, object] | None:
    """Compile the deny-list filter once with libseccomp and keep the raw BPF for each child's prctl."""
    try:
        lib = ctypes.CDLL("libseccomp.so.2")
    except OSError:
        return None
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.POINTER(_ArgCmp),
    ]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    ctx = lib.seccomp_init(SCMP_ACT_ALLOW)
    if not ctx:
        return None

    def rule(action: int, name: str, *cmps: _ArgCmp) -> None:
        nr = lib.seccomp_syscall_resolve_name(name.encode())
        if nr == -1:
            return
        arr = (_ArgCmp * max(len(cmps), 1))(*cmps)
        rc = lib.seccomp_rule_add_array(ctx, action, nr, len(cmps), arr)
        if rc != 0:
            raise OSError(-rc, f"seccomp rule for {name} failed")

    try:
        for name in _DENY_EPERM:
            rule(_errno_action(errno.EPERM), name)
        # threads only: clone without CLONE_THREAD is a new process
        rule(_errno_action(errno.EPERM), "clone", _ArgCmp(0, SCMP_CMP_MASKED_EQ, CLONE_THREAD, 0))
        rule(_errno_action(errno.ENOSYS), "clone3")  # glibc then falls back to clone, whose flags we can see
        rule(_errno_action(errno.EAFNOSUPPORT), "socket", _ArgCmp(0, SCMP_CMP_NE, AF_UNIX, 0))
        fd = os.memfd_create("bpf")
        if lib.seccomp_export_bpf(ctx, fd) != 0:
            return None
        os.lseek(fd, 0, os.SEEK_SET)
        data = b""
        while chunk := os.read(fd, 65536):
            data += chunk
        os.close(fd)
    finally:
        lib.seccomp_release(ctx)
    buf = ctypes.create_string_buffer(data, len(data))
    prog = _SockFprog(len(data) // 8, ctypes.addressof(buf))
    return buf, prog


def _mount(src: str | None, dst: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    rc = _libc.mount(
        src.encode() if src else None,
        dst.encode(),
        fstype.encode() if fstype else None,
        flags,
        data.encode() if data else None,
    )
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {src or fstype} on {dst}: {os.strerror(err)}")


def _bind_ro(src: str, dst: str) -> None:
    if os.path.isdir(src):
        os.makedirs(dst, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        open(dst, "a").close()
    _mount(src, dst, None, MS_BIND | MS_REC)
    _mount(None, dst, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID)


def setup_namespaces(scratch_mb: int) -> None:
    """Enter fresh mount/net/ipc/uts namespaces and chroot into a tiny tree: read-only /usr, the
    interpreter's stdlib, four device files, and a size-limited tmpfs scratch at /tmp. Nothing else of the
    host's filesystem (homes, /work, /etc, /proc) is reachable afterwards."""
    if _libc.unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare: {os.strerror(err)}")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    root = "/tmp"  # the new root is a tmpfs mounted over /tmp inside our private mount namespace
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=4m,mode=755")
    _bind_ro("/usr", root + "/usr")
    for name in ("bin", "lib", "lib64", "sbin", "lib32", "libx32"):
        host = "/" + name
        if os.path.islink(host):
            os.symlink(os.readlink(host), root + host)
        elif os.path.isdir(host):
            _bind_ro(host, root + host)
    # the interpreter's own stdlib when it lives outside /usr (pyenv under /root, a venv under /work):
    # only those directories, read-only
    for path in sys.path:
        real = os.path.realpath(path)
        if real and os.path.isdir(real) and not real.startswith("/usr/"):
            _bind_ro(real, root + real)
    os.makedirs(root + "/dev")
    for dev in ("null", "zero", "urandom", "random"):
        open(root + "/dev/" + dev, "a").close()
        _mount("/dev/" + dev, root + "/dev/" + dev, None, MS_BIND)
    os.makedirs(root + "/tmp")
    _mount("tmpfs", root + "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"size={scratch_mb}m,mode=1777")
    os.chroot(root)
    os.chdir("/tmp")
    _mount(None, "/", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


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


def child(req: dict, fds: dict, cfg: dict, seccomp: tuple | None, nonce: str) -> None:
    """The forked child: confine, then run the candidate. Never returns."""
    try:
        os.setsid()
        os.dup2(fds["stdin"], 0)
        os.dup2(fds["out"], 1)
        os.dup2(fds["err"], 2)
        os.dup2(fds["res"], 3)
        os.closerange(4, 1 << 16)
        mem = int(req["memory_mb"]) << 20
        cpu = int(req["timeout_s"]) + 2
        _limit(resource.RLIMIT_CORE, 0, 0)
        _limit(resource.RLIMIT_CPU, cpu, cpu + 1)
        _limit(resource.RLIMIT_FSIZE, cfg["fsize_mb"] << 20, cfg["fsize_mb"] << 20)
        _limit(resource.RLIMIT_NOFILE, 64, 64)
        if cfg["uid"] is not None:  # NPROC counts every process of the uid: only meaningful for our own uid
            _limit(resource.RLIMIT_NPROC, cfg["nproc"], cfg["nproc"])
        _limit(resource.RLIMIT_STACK, mem, mem)
        _limit(resource.RLIMIT_AS, mem, mem)
        if cfg["uid"] is not None:
            os.setgroups([])
            os.setgid(cfg["uid"])
            os.setuid(cfg["uid"])
        if seccomp is not None:
            if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
                os._exit(EXIT_INTERNAL)
            if _libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(seccomp[1]), 0, 0) != 0:
                os._exit(EXIT_INTERNAL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
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


# ---- the zygote loop --------------------------------------------------------------------------------------


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


def _kill_uid(uid: int | None) -> None:
    """Kill every process of the worker's uid (what a setsid()'d grandchild would run as)."""
    if uid is None:
        return
    pid = os.fork()
    if pid == 0:
        try:
            os.setgid(uid)
            os.setuid(uid)
            os.kill(-1, signal.SIGKILL)  # as this uid: every process of the uid but ourselves
        except BaseException:
            pass
        os._exit(0)
    os.waitpid(pid, 0)


def _reap_strays(uid: int | None) -> int:
    """We are a child subreaper: orphans of a run end up as our children. Kill and reap them all."""
    killed = 0
    deadline = time.monotonic() + 2.0
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return killed
        if pid == 0:  # someone is still alive below us
            killed += 1
            _kill_uid(uid)
            if time.monotonic() > deadline:
                return killed
            time.sleep(0.001)


def _clean_scratch(path: str) -> None:
    import shutil

    for entry in os.scandir(path):
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)
        except OSError:
            pass


def handle(req: dict, cfg: dict, seccomp: tuple | None) -> dict:
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
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        child(req, {"stdin": stdin_fd, "out": out_w, "err": err_w, "res": res_w}, cfg, seccomp, nonce)
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
    timed_out = over_limit = exited = False
    while not exited:
        remaining = start + timeout - time.monotonic()
        if remaining <= 0:
            timed_out = True
            break
        for fd, _ in poller.poll(remaining * 1000):
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
    strays = _reap_strays(cfg["uid"])
    for fd in (*bufs, pidfd):
        os.close(fd)
    _clean_scratch(cfg["scratch"])
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


def main() -> None:
    cfg = json.loads(sys.argv[1])
    req_fd, resp_fd = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    hello: dict = {"ok": True, "namespaces": False, "seccomp": False, "uid": cfg["uid"], "pid": os.getpid()}
    try:
        if cfg["isolation"] == "strict":
            setup_namespaces(cfg["scratch_mb"])
            cfg["scratch"] = "/tmp"
            hello["namespaces"] = True
        else:
            os.chdir(cfg["scratch"])
        seccomp = build_seccomp() if cfg.get("seccomp", True) else None
        hello["seccomp"] = seccomp is not None
        if _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "PR_SET_CHILD_SUBREAPER failed")
    except OSError as exc:
        hello = {"ok": False, "error": str(exc)}
        write_msg(resp_fd, hello)
        return
    gc.collect()
    gc.freeze()
    write_msg(resp_fd, hello)
    while True:
        req = read_msg(req_fd)
        if req is None:
            return
        try:
            resp = handle(req, cfg, seccomp)
        except Exception as exc:
            resp = {"internal_error": f"{type(exc).__name__}: {exc}"}
        write_msg(resp_fd, resp)


if __name__ == "__main__":
    main()
