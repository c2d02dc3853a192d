"""Seccomp filters for the sandbox's run children (stdlib + ctypes; loaded by ``_zygote.py``).

Two filters are stacked on every run child:

* the main deny-list, compiled once per worker with ``libseccomp.so.2``: no new processes (fork, vfork,
  clone without CLONE_THREAD, execve), no ptrace/mount/namespaces/bpf/keyrings/io_uring/..., no sockets but
  AF_UNIX, no SysV IPC or POSIX message queues. The ``landlock`` level (no namespaces to hide the host) also
  refuses ``socket()`` altogether, datagram socketpairs, and the path-based metadata writes Landlock does not
  cover (chmod, chown, utimes, xattrs; ``truncate`` below Landlock ABI 3; inotify watches);
* a per-child filter built by hand from a few BPF instructions: syscalls that act on another process by pid
  (kill, tgkill, prlimit64, setpriority, sched_setaffinity, ...) only work on the child itself. In a PID
  namespace there is nothing else to reach anyway; at the ``landlock`` level this is what keeps a program
  running under your uid away from your other processes.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
import sys

SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_CMP_NE, SCMP_CMP_EQ, SCMP_CMP_MASKED_EQ = 1, 4, 7
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000
CLONE_THREAD = 0x00010000
AF_UNIX = 1
SOCK_TYPE_MASK = 0xF
NON_STREAM_SOCK_TYPES = (2, 3, 4, 5, 6, 10)  # DGRAM, RAW, RDM, SEQPACKET, DCCP, PACKET

DENY_EPERM = (
    "fork", "vfork", "execve", "execveat", "ptrace", "mount", "umount2", "unshare", "setns", "pivot_root",
    "chroot", "bpf", "perf_event_open", "keyctl", "add_key", "request_key", "io_uring_setup",
    "io_uring_enter", "io_uring_register", "userfaultfd", "process_vm_readv", "process_vm_writev",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot", "swapon",
    "swapoff", "acct", "open_by_handle_at", "name_to_handle_at", "fanotify_init", "move_mount", "fsopen",
    "fsmount", "fsconfig", "fspick", "open_tree", "mount_setattr", "pidfd_getfd", "pidfd_send_signal",
    "process_madvise", "quotactl", "kcmp", "lookup_dcookie", "vhangup",
    # SysV IPC and POSIX message queues: a run has no use for them, and at the landlock level they would
    # be the host's (Landlock does not cover them)
    "shmget", "shmat", "shmdt", "shmctl", "msgget", "msgsnd", "msgrcv", "msgctl", "semget", "semop",
    "semctl", "semtimedop", "mq_open", "mq_unlink", "mq_timedsend", "mq_timedreceive", "mq_notify",
    "mq_getsetattr",
)  # fmt: skip

# Metadata writes and watches that Landlock does not restrict; only the landlock level needs them denied
# (elsewhere the chroot holds nothing of the user's).
LANDLOCK_LEVEL_DENY = (
    "chmod", "fchmodat", "fchmodat2", "chown", "lchown", "fchownat", "utime", "utimes", "futimesat",
    "utimensat", "setxattr", "lsetxattr", "removexattr", "lremovexattr", "setxattrat", "removexattrat",
    "inotify_add_watch", "fanotify_mark",
)  # fmt: skip

# (syscall, index of its pid argument, (index, required value) of a "which" argument or None)
PID_SYSCALLS = (
    ("kill", 0, None), ("tkill", 0, None), ("tgkill", 0, None), ("rt_sigqueueinfo", 0, None),
    ("rt_tgsigqueueinfo", 0, None), ("prlimit64", 0, None), ("sched_setaffinity", 0, None),
    ("sched_setparam", 0, None), ("sched_setscheduler", 0, None), ("sched_setattr", 0, None),
    ("migrate_pages", 0, None), ("move_pages", 0, None), ("get_robust_list", 0, None),
    ("pidfd_open", 0, None), ("setpriority", 1, (0, 0)), ("ioprio_set", 1, (0, 1)),
)  # fmt: skip


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("a", ctypes.c_uint64), ("b", ctypes.c_uint64)]


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _errno_action(code: int) -> int:
    return SECCOMP_RET_ERRNO | (code & 0xFFFF)


class Filter:
    """A BPF program ready for ``prctl(PR_SET_SECCOMP, ...)``; keeps its buffer alive."""

    def __init__(self, code: bytes) -> None:
        self.buf = ctypes.create_string_buffer(code, len(code))
        self.prog = SockFprog(len(code) // 8, ctypes.addressof(self.buf))

    def address(self) -> int:
        return ctypes.addressof(self.prog)


class Seccomp:
    """libseccomp, loaded once: the main filter and what the per-child pid filter needs (numbers, arch)."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self.lib = lib
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
        lib.seccomp_arch_native.restype = ctypes.c_uint32
        self.arch = int(lib.seccomp_arch_native())
        self._nrs: dict[str, int] = {}

    def nr(self, name: str) -> int:
        if name not in self._nrs:  # resolved once in the zygote; every run child inherits the cache
            self._nrs[name] = int(self.lib.seccomp_syscall_resolve_name(name.encode()))
        return self._nrs[name]

    def main_filter(self, level: str, landlock_abi: int) -> Filter | None:
        """Compile the deny-list for ``level``; None if libseccomp refuses to export it."""
        lib = self.lib
        ctx = lib.seccomp_init(SCMP_ACT_ALLOW)
        if not ctx:
            return None

        def rule(action: int, name: str, *cmps: _ArgCmp) -> None:
            nr = self.nr(name)
            if nr < 0:  # not a syscall on this architecture / this libseccomp
                return
            arr = (_ArgCmp * max(len(cmps), 1))(*cmps)
            rc = lib.seccomp_rule_add_array(ctx, action, nr, len(cmps), arr)
            if rc != 0:
                raise OSError(-rc, f"seccomp rule for {name} failed")

        eperm = _errno_action(errno.EPERM)
        try:
            for name in DENY_EPERM:
                rule(eperm, name)
            # threads only: clone without CLONE_THREAD is a new process
            rule(eperm, "clone", _ArgCmp(0, SCMP_CMP_MASKED_EQ, CLONE_THREAD, 0))
            rule(_errno_action(errno.ENOSYS), "clone3")  # glibc then falls back to clone, whose flags we see
            rule(_errno_action(errno.EAFNOSUPPORT), "socket", _ArgCmp(0, SCMP_CMP_NE, AF_UNIX, 0))
            if level == "landlock":
                # no namespaces: a named or abstract AF_UNIX socket of the host (a session bus, an agent)
                # would be reachable, so no socket() at all; stream socketpairs (asyncio) still work
                rule(eperm, "socket", _ArgCmp(0, SCMP_CMP_EQ, AF_UNIX, 0))
                for kind in NON_STREAM_SOCK_TYPES:
                    rule(eperm, "socketpair", _ArgCmp(1, SCMP_CMP_MASKED_EQ, SOCK_TYPE_MASK, kind))
                for name in LANDLOCK_LEVEL_DENY:
                    rule(eperm, name)
                if landlock_abi < 3:  # truncate(2) is only a Landlock right from ABI 3 on
                    rule(eperm, "truncate")
            fd = os.memfd_create("bpf")
            try:
                if lib.seccomp_export_bpf(ctx, fd) != 0:
                    return None
                os.lseek(fd, 0, os.SEEK_SET)
                data = b""
                while chunk := os.read(fd, 65536):
                    data += chunk
            finally:
                os.close(fd)
        finally:
            lib.seccomp_release(ctx)
        return Filter(data)

    def pid_filter(self, pid: int) -> Filter:
        """Per child: the PID_SYSCALLS only with pid 0 or ``pid`` (the child itself), else EPERM.

        Only the low 32 bits of a pid argument are compared: the kernel truncates pid_t arguments to int, so
        setting high bits cannot name another process."""
        ld_abs, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06
        deny = _errno_action(errno.EPERM)
        low = 0 if sys.byteorder == "little" else 4

        def ins(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
            return struct.pack("HBBI", code, jt, jf, k & 0xFFFFFFFF)

        def arg(i: int) -> int:
            return 16 + 8 * i + low

        blocks = []
        for name, pid_arg, which in PID_SYSCALLS:
            nr = self.nr(name)
            if nr < 0:
                continue
            body = b""
            if which is not None:
                body += ins(ld_abs, arg(which[0])) + ins(jeq, which[1], 1, 0) + ins(ret, deny)
            body += (
                ins(ld_abs, arg(pid_arg))
                + ins(jeq, pid, 2, 0)
                + ins(jeq, 0, 1, 0)
                + ins(ret, deny)
                + ins(ret, SECCOMP_RET_ALLOW)
            )
            blocks.append(ins(jeq, nr, 0, len(body) // 8) + body)
        # a foreign architecture falls through to ALLOW here (the main filter kills it); x32 numbers
        # (bit 30 set, same audit arch as x86_64) are refused outright
        head = (
            ins(ld_abs, 4)
            + ins(jeq, self.arch, 1, 0)
            + ins(ret, SECCOMP_RET_ALLOW)
            + ins(ld_abs, 0)
            + ins(jge, 0x40000000, 0, 1)
            + ins(ret, deny)
        )
        return Filter(head + b"".join(blocks) + ins(ret, SECCOMP_RET_ALLOW))


def load() -> Seccomp | None:
    try:
        return Seccomp(ctypes.CDLL("libseccomp.so.2"))
    except (OSError, AttributeError):
        return None
