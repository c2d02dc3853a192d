"""Public tests for a user's problem: a tests file, examples parsed from the statement, and (optionally)
LLM-generated tests, each marked with its origin. Generated tests are public (the search uses them)
and never treated as hidden: nothing here produces private tests.

Tests file formats (``--tests FILE``):
  * ``.json``: a list of ``{"input": ..., "output": ...}`` (stdio) or ``{"assert": "assert f(1) == 2"}``;
  * ``.jsonl``: one such object per line;
  * ``.py`` / ``.txt`` of ``assert`` lines: one call test per line.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import DatasetError
from ..types import TestCase


def load_tests_file(path: Path) -> list[TestCase]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DatasetError(f"Cannot read the tests file {path}: {exc.strerror or exc}.") from exc
    if path.suffix in (".py", ".txt"):
        tests = [
            TestCase(input=line.strip(), kind="call", origin="user")
            for line in text.splitlines()
            if line.strip().startswith("assert")
        ]
        if not tests:
            raise DatasetError(f"The tests file {path} has no `assert` lines.")
        return tests
    try:
        items = (
            [json.loads(line) for line in text.splitlines() if line.strip()]
            if path.suffix == ".jsonl"
            else json.loads(text)
        )
    except json.JSONDecodeError as exc:
        raise DatasetError(
            f"The tests file {path} is not valid JSON (line {exc.lineno}): {exc.msg}."
        ) from exc
    if isinstance(items, dict):
        items = items.get("tests", [items])
    if not isinstance(items, list):
        raise DatasetError(f"The tests file {path} must hold a list of tests.")
    tests = []
    for i, item in enumerate(items):
        if isinstance(item, dict) and isinstance(item.get("assert"), str):
            tests.append(TestCase(input=item["assert"], kind="call", origin="user"))
        elif isinstance(item, dict) and "input" in item and "output" in item:
            tests.append(TestCase(input=str(item["input"]), output=str(item["output"]), origin="user"))
        else:
            raise DatasetError(
                f'Test {i + 1} in {path} needs "input" and "output" (stdin/stdout) or "assert" (a call test).'
            )
    return tests


def statement_examples(statement: str) -> list[TestCase]:
    from ..sandbox import extract_examples

    return list(extract_examples(statement))


def merge_tests(*groups: list[TestCase]) -> list[TestCase]:
    """Concatenate, dropping exact duplicates (first origin wins)."""
    seen: set[tuple[str, str, str]] = set()
    out = []
    for group in groups:
        for t in group:
            key = (t.kind, t.input.strip(), t.output.strip())
            if key not in seen:
                seen.add(key)
                out.append(t)
    return out
