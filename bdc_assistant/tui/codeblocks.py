"""Numbered code blocks of an answer, as raw source (what copy / save / run act on).

Copying from the terminal by mouse picks up soft-wrap newlines and border glyphs (aider #2249, Codex
#32204); every action here works on the fence's raw text instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_FENCE = re.compile(r"^(?P<indent>[ \t]{0,3})(?P<ticks>`{3,}|~{3,})(?P<info>[^\n`]*)$")


@dataclass(frozen=True)
class CodeBlock:
    number: int  # 1-based, as shown in the UI
    language: str
    source: str


def parse_code_blocks(markdown: str) -> list[CodeBlock]:
    """Fenced blocks in document order; an unclosed last fence counts (a stream cut by Esc)."""
    blocks: list[CodeBlock] = []
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        ticks, lang = m.group("ticks"), m.group("info").strip().split(" ")[0]
        body: list[str] = []
        i += 1
        while i < len(lines):
            close = _FENCE.match(lines[i])
            if (
                close
                and close.group("ticks")[0] == ticks[0]
                and len(close.group("ticks")) >= len(ticks)
                and not close.group("info").strip()
            ):
                break
            body.append(lines[i])
            i += 1
        i += 1
        blocks.append(CodeBlock(len(blocks) + 1, lang or "text", "\n".join(body)))
    return blocks


def fence(code: str, language: str = "python") -> str:
    """Wrap ``code`` in a fence long enough not to be closed by backticks inside it."""
    ticks = "```"
    while ticks in code:
        ticks += "`"
    return f"{ticks}{language}\n{code.rstrip()}\n{ticks}"


def strip_fences(text: str) -> str:
    """The code inside a model's answer: the first fenced block, or the whole text when there is none."""
    blocks = parse_code_blocks(text)
    return blocks[0].source if blocks else text
