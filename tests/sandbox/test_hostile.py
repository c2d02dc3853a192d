"""Hostile programs: each must be contained, get the right verdict, and leave the machine responsive."""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bdc_assistant.sandbox import Sandbox, SandboxLimits
from bdc_assistant.types import Status, TestCase

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="strict isolation needs root")

LIMITS = SandboxLimits(timeout_s=2.0, memory_mb=512, output_limit_kb=64, scratch_mb=32)


FAKE_KEYS = {
    "SANDBOX_TEST_FAKE_API_KEY": "sk-fake-" + secrets.token_hex(8),
    "OPENAI_API_KEY": "sk-openai-" + secrets.token_hex(8),
}


@pytest.fixture(scope="module")
def box() -> Iterator[Sandbox]:
    saved = {k: os.environ.get(k) for k in FAKE_KEYS}
    os.environ.update(FAKE_KEYS)  # the app has keys in its environment when the pool starts
    try:
        with Sandbox(workers=2, limits=LIMITS) as sb:
            yield sb
    finally:
        for k, old in saved.items():
            if old is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = old


def _sandbox_processes(uids: set[int] | None = None) -> list[int]:
    """PIDs whose real uid is one of the sandbox's per-worker uids (all ≥ 200000)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("Uid:"):
                uid = int(line.split()[1])
                if (uids is None and uid >= 200_000) or (uids is not None and uid in uids):
                    found.append(int(entry))
    return found


def _uids(sb: Sandbox) -> set[int]:
    return {w.hello["uid"] for w in sb._workers}


def _still_responsive(sb: Sandbox) -> None:
    t0 = time.monotonic()
    v = sb.run_tests("print(int(input()) + 1)", [TestCase("41\n", "42\n")])[0]
    assert v.status is Status.PASS, v
    assert time.monotonic() - t0 < 1.5
    assert _sandbox_processes(_uids(sb)) == []


def test_loopback_listener_gets_no_connection(box: Sandbox) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    server.settimeout(0.2)
    port = server.getsockname()[1]
    got: list[object] = []

    def accept() -> None:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            try:
                got.append(server.accept())
            except TimeoutError:
                continue

    th = threading.Thread(target=accept)
    th.start()
    code = (
        f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=1)\ns.sendall(b'hi')\n"
    )
    v = box.run(code)
    th.join()
    server.close()
    assert got == []
    assert v.status is Status.RUNTIME_ERROR
    assert "Error" in v.stderr  # EAFNOSUPPORT from seccomp, or ENETUNREACH from the empty netns
    _still_responsive(box)


def test_secrets_in_home_and_environment_are_unreachable(box: Sandbox, tmp_path: Path) -> None:
    token = secrets.token_hex(12)
    home_secret = Path.home() / f".bdc_test_secret_{token[:6]}"
    home_secret.write_text(token)
    world_readable = Path(__file__).resolve().parents[2] / f".bdc_test_env_{token[:6]}"
    world_readable.write_text(token)
    world_readable.chmod(0o644)
    try:
        code = (
            "import os\n"
            f"for p in [{str(home_secret)!r}, {str(world_readable)!r}, '/proc/1/environ', '/proc/self/environ']:\n"
            "    try:\n"
            "        print(open(p).read())\n"
            "    except OSError as e:\n"
            "        print('denied', type(e).__name__)\n"
            "print(dict(os.environ))\n"
            "print(os.listdir('/'))\n"
        )
        v = box.run(code)
        assert v.status is Status.PASS
        assert token not in v.stdout
        for value in FAKE_KEYS.values():
            assert value not in v.stdout
        assert "KEY" not in v.stdout
        assert v.stdout.count("denied") == 4
        assert "'home'" not in v.stdout and "'work'" not in v.stdout
    finally:
        home_secret.unlink()
        world_readable.unlink()
    _still_responsive(box)


def test_cannot_write_users_files(box: Sandbox, tmp_path: Path) -> None:
    victim = Path.home() / f".bdc_test_victim_{secrets.token_hex(4)}"
    victim.write_text("original")
    repo_file = Path(__file__).resolve()
    before = repo_file.read_bytes()
    try:
        code = (
            f"for p in [{str(victim)!r}, {str(repo_file)!r}, {str(tmp_path / 'new.txt')!r}, '/usr/x']:\n"
            "    try:\n"
            "        open(p, 'w').write('pwned')\n"
            "        print('wrote', p)\n"
            "    except OSError as e:\n"
            "        print('denied', type(e).__name__)\n"
        )
        v = box.run(code)
        assert victim.read_text() == "original"
        assert repo_file.read_bytes() == before
        assert not (tmp_path / "new.txt").exists()
        # the only writes that can "succeed" land in the run's own scratch tmpfs, never on the host
        assert v.stdout.count("denied") >= 2
    finally:
        victim.unlink()
    _still_responsive(box)


def test_fork_bomb(box: Sandbox) -> None:
    code = "import os\nwhile True:\n    os.fork()\n"
    v = box.run(code)
    assert v.status is Status.RUNTIME_ERROR
    assert "PermissionError" in v.stderr or "BlockingIOError" in v.stderr
    # a bomb that swallows the errors keeps spinning until the wall clock: a timeout, nothing spawned
    v = box.run(
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
        timeout_s=1.0,
    )
    assert v.status is Status.TIMEOUT
    _still_responsive(box)


def test_thread_bomb_is_capped(box: Sandbox) -> None:
    code = (
        "import threading, time\nn = 0\ntry:\n    while True:\n"
        "        threading.Thread(target=time.sleep, args=(5,), daemon=True).start(); n += 1\n"
        "except RuntimeError:\n    print('capped', n, flush=True)\n    import os; os._exit(0)\n"
    )
    v = box.run(code)
    assert v.status is Status.PASS, v
    assert "capped" in v.stdout and int(v.stdout.split()[1]) <= LIMITS.nproc
    _still_responsive(box)


def test_memory_bomb(box: Sandbox) -> None:
    v = box.run("x = []\nwhile True:\n    x.append(b'x' * (64 << 20))\n")
    assert v.status is Status.MEMORY, v
    v = box.run_tests("x = bytearray(10**10)", [TestCase("", "")])[0]
    assert v.status is Status.MEMORY, v
    _still_responsive(box)


def test_disk_fill(box: Sandbox) -> None:
    code = (
        "import os\nblock = b'x' * (8 << 20)\n"
        "for d in ['.', '/tmp', '/var/tmp', '/dev/shm']:\n"
        "    for i in range(40):\n"
        "        try:\n"
        "            with open(os.path.join(d, f'f{i}'), 'wb') as f:\n"
        "                f.write(block)\n"
        "        except OSError as e:\n"
        "            print(d, type(e).__name__, e.errno)\n"
        "            break\n"
        "with open('huge', 'wb') as f:\n    f.write(b'y' * (100 << 20))\n"
    )
    v = box.run(code)
    assert v.status in (Status.RUNTIME_ERROR, Status.MEMORY), v
    assert "28" in v.stdout  # ENOSPC: the scratch tmpfs is full long before 320 MiB
    # the scratch is wiped after every run
    v = box.run("import os\nprint(sorted(os.listdir('.')))\n")
    assert v.stdout.strip() == "[]"
    _still_responsive(box)


def test_infinite_loop(box: Sandbox) -> None:
    t0 = time.monotonic()
    v = box.run_tests("while True:\n    pass\n", [TestCase("", "")], timeout_s=1.0)[0]
    assert v.status is Status.TIMEOUT
    assert time.monotonic() - t0 < 2.5
    _still_responsive(box)


def test_detached_child_is_not_left_behind(box: Sandbox) -> None:
    code = (
        "import subprocess, os\n"
        "try:\n"
        "    subprocess.Popen(['sleep', '30'], start_new_session=True)\n"
        "    print('spawned')\n"
        "except OSError as e:\n"
        "    print('refused', type(e).__name__)\n"
        "try:\n"
        "    if os.fork() == 0:\n"
        "        os.setsid()\n"
        "        import time; time.sleep(30)\n"
        "except OSError as e:\n"
        "    print('refused', type(e).__name__)\n"
    )
    v = box.run(code)
    assert v.stdout.count("refused") == 2
    _still_responsive(box)


def test_detached_child_is_killed_even_without_seccomp() -> None:
    """The subreaper + per-uid sweep is the second line of defence behind seccomp."""
    code = (
        "import subprocess, os, time\n"
        "p = subprocess.Popen(['/usr/bin/sleep', '30'], start_new_session=True)\n"
        "if os.fork() == 0:\n    os.setsid()\n    time.sleep(30)\n    os._exit(0)\n"
        "print('spawned', p.pid)\n"
    )
    with Sandbox(workers=1, limits=LIMITS, seccomp=False) as sb:
        v = sb.run(code)
        assert v.status is Status.PASS, v
        assert "spawned" in v.stdout
        time.sleep(0.1)
        assert _sandbox_processes(_uids(sb)) == []


def test_output_flood(box: Sandbox) -> None:
    t0 = time.monotonic()
    v = box.run("while True:\n    print('x' * 1000)\n")
    assert v.status is Status.RUNTIME_ERROR
    assert v.detail == "output limit exceeded"
    assert len(v.stdout) <= LIMITS.output_limit_kb * 1024
    assert time.monotonic() - t0 < 1.5
    _still_responsive(box)


def test_sandbox_cannot_signal_the_app(box: Sandbox) -> None:
    v = box.run(f"import os, signal\nos.kill({os.getpid()}, signal.SIGTERM)\n")
    assert v.status is Status.RUNTIME_ERROR  # ProcessLookupError: a different pid namespace of uid
    _still_responsive(box)
