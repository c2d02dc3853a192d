"""What a piece of Python source defines, read with ``ast`` (never run)."""

from __future__ import annotations

import ast


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
