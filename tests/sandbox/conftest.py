"""Shared helpers: which isolation levels this machine can test, and finding processes a run left behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bdc_assistant.sandbox import Sandbox
from bdc_assistant.sandbox._confine import landlock_abi


def _lsm_lists_landlock() -> bool | None:
    """What the kernel's LSM list says, independently of our syscall probe (None: securityfs not mounted)."""
    try:
        return "landlock" in Path("/sys/kernel/security/lsm").read_text().split(",")
    except OSError:
        return None


def require_landlock() -> int:
    """The Landlock ABI to test with. Fails when the two ways of asking the kernel disagree (one of them
    claims Landlock and the level would silently not be what it says); skips, saying why, when the kernel
    really has no Landlock."""
    abi, lsm = landlock_abi(), _lsm_lists_landlock()
    if lsm is True and abi == 0:
        pytest.fail("The kernel lists Landlock among its LSMs but landlock_create_ruleset reports no ABI.")
    if abi == 0:
        pytest.skip("This kernel has no Landlock (landlock_create_ruleset reports no ABI), so the landlock "
                    "level cannot be tested here.")  # fmt: skip
    return abi


def descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out: set[int] = set()
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            out.add(child)
            stack.append(child)
    return out


def strays(sb: Sandbox) -> list[int]:
    """Processes below the pool's workers other than the zygotes themselves: what runs left running."""
    found: list[int] = []
    for w in sb._workers:
        found += sorted(descendants(w.proc.pid) - {w.hello["host_pid"]})
    return found
