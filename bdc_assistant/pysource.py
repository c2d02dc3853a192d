"""What a piece of Python source defines, read with ``ast`` (never run)."""

from __future__ import annotations

import ast
import builtins


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


_BUILTIN_NAMES = frozenset(dir(builtins))


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
