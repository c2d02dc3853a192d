"""What a piece of Python source defines, read with ``ast`` (never run)."""

from __future__ import annotations

import ast
import builtins
import re


def defines(code: str, name: str) -> bool:
    """Whether ``code`` defines ``name`` (function or class) at top level; for code that does not parse,
    whether it has a ``def name(`` line."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return f"def {name}(" in code
    return any(
        isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and node.name == name
        for node in tree.body
    )


def is_main_guard(node: ast.stmt) -> bool:
    """Whether a top-level statement is an ``if __name__ == "__main__":`` block (demo code, not the program)."""
    return (
        isinstance(node, ast.If)
        and isinstance(node.test, ast.Compare)
        and isinstance(node.test.left, ast.Name)
        and node.test.left.id == "__name__"
    )


_BUILTIN_NAMES = frozenset(dir(builtins))


# A request for a named function: "Write a function is_even(n) that…", "Implement a function `is_even`",
# "Create a method called is_even", "Complete def is_even(n):". Only after a verb that asks for it, so a
# statement that merely mentions one ("Consider the function f(x) = …" in a stdin task) names nothing.
_NAME = r"`?([A-Za-z_]\w*)`?"
_NAMED_FUNCTION = re.compile(
    r"\b(?:write|implement|create|define|complete|code|make|fix)\b[^.\n]{0,40}?"
    rf"(?:\bdef\s+{_NAME}\s*\(|\b(?:function|method)\s+(?:(?:called|named)\s+{_NAME}|{_NAME}\s*\(|`([A-Za-z_]\w*)`))",
    re.IGNORECASE,
)


def named_function(text: str) -> str | None:
    """The function a prose problem names (``Write a function is_even(n) that…`` → ``is_even``), or None:
    a problem that asks for a function gets the function, without the demo calls an instruct model adds."""
    m = _NAMED_FUNCTION.search(text)
    if m is None:
        return None
    name = next(g for g in m.groups() if g)
    return None if name in _BUILTIN_NAMES else name


def asserted_function(text: str) -> str | None:
    """The function the first ``assert`` line of ``text`` calls (``assert f(2) == 4`` → ``f``), skipping
    builtins (``assert set(f(x)) == …`` → ``f``): the function a problem with an example test asks for."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip().startswith("assert")), None)
    if line is None:
        return None
    try:
        tree = ast.parse(line)
    except SyntaxError:
        return None
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id not in _BUILTIN_NAMES
        ):
            return node.func.id
    return None
