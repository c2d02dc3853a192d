"""Copy text: the platform's clipboard tool first, then OSC 52 through the terminal.

OSC 52 alone fails on macOS Terminal and inside tmux without passthrough; native tools alone fail over
SSH. Trying native first and OSC 52 second covers both (the Toad / Mistral Vibe pattern).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class CopyResult:
    method: str  # "pbcopy" | "wl-copy" | "xclip" | "xsel" | "osc52"
    chars: int


def _native_commands() -> list[list[str]]:
    if sys.platform == "darwin":
        return [["pbcopy"]]
    if sys.platform.startswith("win"):
        return [["clip"]]
    cmds: list[list[str]] = []
    if os.environ.get("WAYLAND_DISPLAY"):
        cmds.append(["wl-copy"])
    if os.environ.get("DISPLAY"):
        cmds += [["xclip", "-selection", "clipboard"], ["xsel", "--clipboard", "--input"]]
    return cmds


def copy_text(text: str, osc52: Callable[[str], None], *, native: bool = True) -> CopyResult:
    """Copy ``text``; ``osc52`` is the app's ``copy_to_clipboard`` (always also called: it is harmless
    when the native tool worked, and it is what reaches the local terminal over SSH)."""
    method = "osc52"
    if native and not os.environ.get("BDC_CLIPBOARD_NO_NATIVE"):
        for cmd in _native_commands():
            if shutil.which(cmd[0]) is None:
                continue
            try:
                subprocess.run(cmd, input=text.encode(), timeout=2, check=True, capture_output=True)
            except (OSError, subprocess.SubprocessError):
                continue
            method = cmd[0]
            break
    osc52(text)
    return CopyResult(method, len(text))
