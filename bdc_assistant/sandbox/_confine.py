"""Isolation set-up for the zygote (stdlib + ctypes; loaded by ``_zygote.py`` before anything is hidden).

``userns`` level, for any user (bubblewrap's recipe, no setuid helper): the zygote forks a short-lived helper,
then ``unshare``s user, mount, network, IPC, UTS and PID namespaces; the helper, still outside, writes
``setgroups`` = deny and a one-line uid/gid map that makes the zygote's uid 0 inside (as root the map
names a random unprivileged uid instead, so nothing runs as the host's root). The zygote then builds a
tmpfs root holding read-only binds of ``/usr``, the interpreter's stdlib and four device files plus a
size- and inode-limited tmpfs scratch, forks the worker that becomes PID 1 of the new PID namespace,
which chroots into that root and drops every capability before it serves a single run.

``landlock`` level, where user namespaces are unavailable: no namespaces; a Landlock ruleset (built once,
applied by each run child) allows reading ``/usr`` and the stdlib, writing only the worker's scratch
directory, no TCP, and (ABI 6+) no signals or abstract sockets beyond the child's own domain.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
USERNS_FLAGS = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWPID
NAMESPACES = ["user", "mount", "net", "ipc", "uts", "pid"]

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
# statvfs flag -> mount flag, for flags a user namespace may not clear on a bind remount (the fallback
# when mount_setattr(2) is missing)
_LOCKED_FLAGS = {1: MS_RDONLY, 2: MS_NOSUID, 4: MS_NODEV, 8: MS_NOEXEC, 1024: 1024, 2048: 2048, 4096: 1 << 21}
MOUNT_ATTR_RDONLY, MOUNT_ATTR_NOSUID, MOUNT_ATTR_NODEV = 0x1, 0x2, 0x4
AT_FDCWD, AT_RECURSIVE = -100, 0x8000

PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_CAPBSET_DROP = 1, 4, 24
PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, PR_CAP_AMBIENT = 36, 38, 22, 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
SECCOMP_MODE_FILTER = 2

SYS_MOUNT_SETATTR = 442  # the same number on every architecture (asm-generic era)
SYS_LANDLOCK_CREATE_RULESET, SYS_LANDLOCK_ADD_RULE, SYS_LANDLOCK_RESTRICT_SELF = 444, 445, 446
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1
LL_EXECUTE, LL_WRITE_FILE, LL_READ_FILE, LL_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
LL_MAKE_CHAR, LL_MAKE_BLOCK = 1 << 6, 1 << 11
LL_REFER, LL_TRUNCATE, LL_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
LL_NET_BIND_TCP, LL_NET_CONNECT_TCP = 1 << 0, 1 << 1
LL_SCOPE_ABSTRACT_UNIX_SOCKET, LL_SCOPE_SIGNAL = 1 << 0, 1 << 1
_LL_FILE_RIGHTS = LL_EXECUTE | LL_WRITE_FILE | LL_READ_FILE | LL_TRUNCATE | LL_IOCTL_DEV

DEVICES = ("null", "zero", "urandom", "random")

libc = ctypes.CDLL(None, use_errno=True)
libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
libc.unshare.argtypes = [ctypes.c_int]
libc.syscall.restype = ctypes.c_long
libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]


def _syscall(nr: int, *args: object) -> int:
    """syscall(2) with every integer passed as a full-width long (a bare int would leave the upper half of
    a 64-bit argument register undefined)."""
    conv = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
    return int(libc.syscall(ctypes.c_long(nr), *conv))


def _fail(what: str) -> OSError:
    err = ctypes.get_errno()
    return OSError(err, f"{what}: {os.strerror(err)}")


def prctl(option: int, arg: int = 0) -> None:
    if libc.prctl(option, arg, 0, 0, 0) != 0:
        raise _fail(f"prctl({option})")


def system_paths(stdlib: list[str]) -> tuple[list[str], dict[str, str]]:
    """What a run may read: ``/usr``, the top-level library dirs (symlinks on merged-/usr systems, returned
    separately), and the interpreter's stdlib directories when they live outside ``/usr`` (pyenv, a venv's
    base). Never a site-packages: the zygote runs with ``-S`` (no site module)."""
    dirs, links = ["/usr"], {}
    for name in ("bin", "lib", "lib64", "sbin", "lib32", "libx32"):
        host = "/" + name
        if os.path.islink(host):
            links[host] = os.readlink(host)
        elif os.path.isdir(host):
            dirs.append(host)
    for path in stdlib:
        real = os.path.realpath(path)
        if real and os.path.isdir(real) and not real.startswith("/usr/") and real not in dirs:
            dirs.append(real)
    return dirs, links


# ---- userns level -------------------------------------------------------------------------------------


def enter_userns(root_uid: int | None) -> None:
    """Unshare user+mount+net+ipc+uts+pid namespaces and become uid/gid 0 inside them.

    A helper forked beforehand stays in the parent namespace and writes the maps: an unprivileged process
    may map only its own uid (that is all we ask), and as root the helper maps ``root_uid`` instead so
    the sandbox never runs as the host's root. Our next child becomes PID 1 of the new PID namespace."""
    if os.geteuid() == 0:
        if root_uid is None:
            raise OSError(errno.EINVAL, "as root the user namespace needs an unprivileged uid to map")
        os.setgroups([])  # root's supplementary groups (gid 0) must not come along
        uid = gid = root_uid
    else:
        uid, gid = os.geteuid(), os.getegid()
    go_r, go_w = os.pipe()
    helper = os.fork()
    if helper == 0:
        os.close(go_w)
        if os.read(go_r, 1) != b"1":
            os._exit(0)
        try:
            pid = os.getppid()
            for name, text in (
                ("setgroups", "deny"),
                ("uid_map", f"0 {uid} 1\n"),
                ("gid_map", f"0 {gid} 1\n"),
            ):
                fd = os.open(f"/proc/{pid}/{name}", os.O_WRONLY)
                try:
                    os.write(fd, text.encode())
                finally:
                    os.close(fd)
        except OSError as exc:
            os._exit((exc.errno or 1) & 0x7F)
        os._exit(0)
    os.close(go_r)
    rc = libc.unshare(USERNS_FLAGS)
    err = ctypes.get_errno()
    os.write(go_w, b"1" if rc == 0 else b"0")
    os.close(go_w)
    _, status = os.waitpid(helper, 0)
    if rc != 0:
        raise OSError(err, f"unshare(CLONE_NEWUSER|NEWNS|NEWNET|NEWIPC|NEWUTS|NEWPID): {os.strerror(err)}")
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise OSError(code, f"writing the user namespace's uid/gid map: {os.strerror(code)}")


def become_ns_root() -> None:
    """uid/gid 0 inside the namespace (as root: the mapped unprivileged uid); stay dumpable so that our
    own /proc entries keep working for the rest of the set-up."""
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)
    prctl(PR_SET_DUMPABLE, 1)


def mount(src: str | None, dst: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    rc = libc.mount(
        src.encode() if src else None,
        dst.encode(),
        fstype.encode() if fstype else None,
        flags,
        data.encode() if data else None,
    )
    if rc != 0:
        raise _fail(f"mount {src or fstype} on {dst}")


def _make_readonly(dst: str) -> None:
    """Read-only, nosuid, nodev for the bind and every mount below it (mount_setattr, Linux 5.12+); on
    older kernels remount the top mount, keeping the flags a user namespace may not clear."""
    attr = struct.pack("QQQQ", MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, 0, 0, 0)
    buf = ctypes.create_string_buffer(attr, len(attr))
    rc = _syscall(SYS_MOUNT_SETATTR, AT_FDCWD, dst.encode(), AT_RECURSIVE, buf, len(attr))
    if rc == 0:
        return
    if ctypes.get_errno() != errno.ENOSYS:
        raise _fail(f"mount_setattr read-only on {dst}")
    flags = MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV
    have = os.statvfs(dst).f_flag
    for st, ms in _LOCKED_FLAGS.items():
        if have & st:
            flags |= ms
    mount(None, dst, None, flags)


def open_sources(dirs: list[str]) -> list[tuple[str, int]]:
    """O_PATH handles on what will be bound, opened with our initial credentials: as root the stdlib may
    sit under /root, which the mapped uid could no longer walk into."""
    out = [(path, os.open(path, os.O_PATH | os.O_CLOEXEC)) for path in dirs]
    out += [("/dev/" + d, os.open("/dev/" + d, os.O_PATH | os.O_CLOEXEC)) for d in DEVICES]
    return out


def build_root(root: str, sources: list[tuple[str, int]], links: dict[str, str], scratch_mb: int) -> None:
    """Mount the sandbox's whole world at ``root``: a small tmpfs, read-only binds of ``sources``, the
    merged-/usr symlinks, the device files, and the scratch tmpfs at ``root/tmp``. Closes the handles."""
    for path, _ in sources:
        if path == "/tmp" or path.startswith("/tmp/"):  # the scratch tmpfs would cover it
            raise OSError(
                errno.EINVAL, f"the interpreter's stdlib {path} is under /tmp, the sandbox's scratch"
            )
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=4m,nr_inodes=4096,mode=755")
    for path, fd in sources:
        dst = root + path
        handle = f"/proc/self/fd/{fd}"
        if path.startswith("/dev/"):
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            os.close(os.open(dst, os.O_CREAT | os.O_WRONLY, 0o644))
            mount(handle, dst, None, MS_BIND)
        else:
            os.makedirs(dst, exist_ok=True)
            mount(handle, dst, None, MS_BIND | MS_REC)
            _make_readonly(dst)
        os.close(fd)
    for link, target in links.items():
        os.symlink(target, root + link)
    os.makedirs(root + "/tmp")
    # nr_inodes: millions of empty files would cost kernel memory that no size= accounts for
    nodes = max(1024, min(scratch_mb * 256, 65536))
    mount(
        "tmpfs",
        root + "/tmp",
        "tmpfs",
        MS_NOSUID | MS_NODEV,
        f"size={scratch_mb}m,nr_inodes={nodes},mode=1777",
    )


def enter_root(root: str) -> None:
    """Chroot into the tree and make its top read-only (the scratch at /tmp stays writable)."""
    os.chroot(root)
    os.chdir("/tmp")
    mount(None, "/", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    name = b"sandbox"
    libc.sethostname(name, len(name))


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def drop_capabilities() -> int:
    """Empty the bounding, ambient, effective, permitted and inheritable sets; return what is left
    effective (0 unless the kernel refused)."""
    for cap in range(64):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            err = ctypes.get_errno()
            # EINVAL: past the last capability this kernel knows. EPERM: no CAP_SETPCAP (a normal user at
            # the landlock level), who has nothing to drop, and no_new_privs keeps exec from adding any
            if err in (errno.EINVAL, errno.EPERM):
                break
            raise _fail(f"dropping capability {cap} from the bounding set")
    libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    header = _CapHeader(0x20080522, 0)
    data = (_CapData * 2)()
    if libc.capset(ctypes.byref(header), data) != 0:
        raise _fail("capset")
    if libc.capget(ctypes.byref(header), data) != 0:
        raise _fail("capget")
    return int(data[0].effective) | int(data[1].effective) << 32


# ---- Landlock -----------------------------------------------------------------------------------------


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, 0 if Landlock is missing or disabled."""
    return max(_syscall(SYS_LANDLOCK_CREATE_RULESET, None, 0, LANDLOCK_CREATE_RULESET_VERSION), 0)


def landlock_ruleset(
    abi: int, read: list[str], write: list[str], devices: list[str], *, execute: bool = False
) -> int:
    """Build (not apply) a ruleset: ``read`` beneath these paths, everything but executing and device
    nodes beneath ``write``, read/write on ``devices``; no TCP bind/connect (ABI 4+); no signals to or
    abstract sockets of processes outside the applying process's domain (ABI 6+). Returns its fd."""
    fs = (1 << 13) - 1
    if abi >= 2:
        fs |= LL_REFER
    if abi >= 3:
        fs |= LL_TRUNCATE
    if abi >= 5:
        fs |= LL_IOCTL_DEV
    net = LL_NET_BIND_TCP | LL_NET_CONNECT_TCP if abi >= 4 else 0
    scoped = LL_SCOPE_ABSTRACT_UNIX_SOCKET | LL_SCOPE_SIGNAL if abi >= 6 else 0
    attr = struct.pack("QQQ", fs, net, scoped)
    buf = ctypes.create_string_buffer(attr, len(attr))
    fd = _syscall(SYS_LANDLOCK_CREATE_RULESET, buf, len(attr), 0)
    if fd < 0:
        raise _fail("landlock_create_ruleset")
    ro = LL_READ_FILE | LL_READ_DIR | (LL_EXECUTE if execute else 0)
    rw = fs & ~(LL_EXECUTE | LL_MAKE_CHAR | LL_MAKE_BLOCK | LL_IOCTL_DEV)
    dev = (LL_READ_FILE | LL_WRITE_FILE | LL_TRUNCATE | LL_IOCTL_DEV) & fs
    try:
        for paths, access in ((read, ro), (write, rw), (devices, dev)):
            for path in paths:
                _landlock_rule(fd, path, access & fs)
    except OSError:
        os.close(fd)
        raise
    return fd


def _landlock_rule(ruleset: int, path: str, access: int) -> None:
    pfd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    try:
        if not os.path.isdir(path):
            access &= _LL_FILE_RIGHTS
        attr = struct.pack("=Qi", access, pfd)  # packed struct landlock_path_beneath_attr
        buf = ctypes.create_string_buffer(attr, len(attr))
        if _syscall(SYS_LANDLOCK_ADD_RULE, ruleset, LANDLOCK_RULE_PATH_BENEATH, buf, 0) != 0:
            raise _fail(f"landlock_add_rule {path}")
    finally:
        os.close(pfd)


def landlock_restrict(ruleset: int) -> None:
    """Apply the ruleset to the calling process (needs no_new_privs); inherited by anything it starts."""
    if _syscall(SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0) != 0:
        raise _fail("landlock_restrict_self")
