"""Numbered code blocks of an answer, as raw source (what copy / save / run act on).

Copying from the terminal by mouse picks up soft-wrap newlines and border glyphs (aider #2249, Codex
#32204); every action here works on the fence's raw text instead.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CodeBlock:
    number: int  # 1-based, as shown in the UI
    language: str
    source: str


def fence(code: str, language: str = "python") -> str:
    """Wrap ``code`` in a fence long enough not to be closed by backticks inside it."""
    ticks = "```"
    while ticks in code:
        ticks += "`"
    return f"{ticks}{language}\n{code.rstrip()}\n{ticks}"
