"""Pull runnable examples out of a problem statement (the TUI and deep mode test candidates on them).

Recognised forms, in this order:
* Markdown blocks ``**Input**:`` + fenced block, then ``**Output**:`` + fenced block (CodeContests repo style);
* the Codeforces text layout after an ``Example``/``Examples`` line: a line ``Input``, the input, a line
  ``Output``, the output (repeated);
* doctest lines ``>>> f(x)`` followed by the expected result line(s) → a call test
  ``assert (f(x)) == (result)``; results that are not Python expressions are skipped.
"""

from __future__ import annotations

import re

from ..types import TestCase

_MD = re.compile(
    r"\*\*Input\*\*:?\s*\n```[^\n]*\n(.*?)```\s*\n+\s*\*\*Output\*\*:?\s*\n```[^\n]*\n(.*?)```", re.S
)
_EXAMPLES_HEADING = re.compile(r"^\s*(?:#+\s*)?(?:Sample\s+tests?|Examples?)\s*:?\s*$", re.M | re.I)


def _markdown(statement: str) -> list[TestCase]:
    return [TestCase(input=i, output=o, origin="statement") for i, o in _MD.findall(statement)]


def _codeforces(statement: str) -> list[TestCase]:
    heads = list(_EXAMPLES_HEADING.finditer(statement))
    if not heads:
        return []
    lines = statement[heads[0].end() :].splitlines()
    tests: list[TestCase] = []
    state, cur_in, cur_out = "", [], []  # type: ignore[var-annotated]

    def flush() -> None:
        if cur_in or cur_out:
            tests.append(
                TestCase(
                    input="\n".join(cur_in).strip("\n") + "\n",
                    output="\n".join(cur_out).strip("\n") + "\n",
                    origin="statement",
                )
            )

    for line in lines:
        word = line.strip().rstrip(":").lower()
        if word == "input":
            if state == "out":
                flush()
                cur_in, cur_out = [], []
            state = "in"
        elif word == "output":
            state = "out"
        elif line.startswith("#") or word in {"note", "notes", "explanation"}:
            break
        elif state == "in":
            cur_in.append(line)
        elif state == "out":
            cur_out.append(line)
    if state == "out":
        flush()
    return [t for t in tests if t.input.strip() and t.output.strip()]


def _doctests(statement: str) -> list[TestCase]:
    tests = []
    lines = statement.splitlines()
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped.startswith(">>> "):
            continue
        expr = stripped[4:].strip()
        result_lines = []
        for nxt in lines[i + 1 :]:
            s = nxt.strip()
            if not s or s.startswith(">>>") or s.startswith('"""') or s.startswith("'''"):
                break
            result_lines.append(s)
        if not result_lines:
            continue
        result = " ".join(result_lines)
        code = f"assert ({expr}) == ({result}), {expr!r}\n"
        try:
            compile(code, "<example>", "exec")
        except SyntaxError:
            continue
        tests.append(TestCase(input=code, kind="call", origin="statement"))
    return tests


def _asserts(statement: str) -> list[TestCase]:
    """``assert f(x) == y`` lines of the statement (how MBPP-style problems state their example)."""
    tests = []
    for line in statement.splitlines():
        text = line.strip()
        if not text.startswith("assert ") or "(" not in text:
            continue
        try:
            compile(text, "<example>", "exec")
        except SyntaxError:
            continue
        tests.append(TestCase(input=text + "\n", kind="call", origin="statement"))
    return tests


def extract_examples(statement: str, asserts: bool = True) -> list[TestCase]:
    """Examples stated in ``statement`` as tests: stdin/stdout pairs, doctest-derived call tests, and (for a
    problem without stdin/stdout examples, unless ``asserts`` is False) its ``assert`` lines."""
    stdio = _markdown(statement) or _codeforces(statement)
    seen: set[tuple[str, str]] = set()
    unique = []
    for t in stdio:
        key = (t.input.strip(), t.output.strip())
        if key not in seen:
            seen.add(key)
            unique.append(t)
    found = unique + _doctests(statement)
    if asserts and not unique:
        calls = {t.input for t in found}
        for t in _asserts(statement):
            if t.input not in calls:
                calls.add(t.input)
                found.append(t)
    return found
