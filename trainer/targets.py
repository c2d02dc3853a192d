"""A solution as the solver's one-turn prompt asks for it, when the problem is a stub to complete.

Why: at answer time the model sees the stub (imports, signature, and a docstring that states an example,
``Your code should pass this test: assert …``) and, asked for "the complete function … and no example
usage", restates the stub word for word and writes the body. Trajectories from deep mode were written by
agents that saw the statement in another frame: their solutions restate the docstring *without* the
example, sometimes drop the stub's imports, and often end with top-level ``assert``/``print`` lines. An
expert trained on those targets learns to drop the example and the imports (on ``mbpp-val`` the tuned
model then lost problems the base solved, by exactly those two habits). So a target is rebuilt as: the
stub's lines before its function, the solution's other top-level code (helpers, its own imports not in the
stub), the stub's signature and docstring, the solution's body, and the solution's top-level code after
the function minus example usage. The rebuilt program must define the same function body and helpers as
the solution (compared as ASTs), or the solution is kept as it was: alignment never changes behaviour.
"""

from __future__ import annotations

import ast
from typing import TypeGuard

from bdc_assistant.pysource import is_main_guard


def align_to_stub(code: str, stub: str) -> str:
    """``code`` rewritten around ``stub``'s header (see the module doc); ``code`` itself when it cannot be."""
    try:
        tree, stub_tree = ast.parse(code), ast.parse(stub)
    except SyntaxError:
        return code
    stub_fn = stub_tree.body[-1] if stub_tree.body else None
    if not isinstance(stub_fn, ast.FunctionDef | ast.AsyncFunctionDef):
        return code
    fns = [n for n in tree.body if isinstance(n, type(stub_fn)) and n.name == stub_fn.name]
    if len(fns) != 1 or ast.dump(fns[0].args) != ast.dump(stub_fn.args):
        return code  # another signature: the body may use other names
    fn = fns[0]
    body = _body(fn)
    if not body or body[0].lineno == fn.lineno:
        return code  # nothing but a docstring, or a one-line def
    lines = code.splitlines(keepends=True)
    # the body's text starts after the docstring (keeping comments between them), else at the first statement
    start = (fn.body[0].end_lineno or fn.body[0].lineno) if len(body) < len(fn.body) else body[0].lineno - 1
    body_text = "".join(lines[start : fn.end_lineno])

    stub_lines = stub.strip("\n").splitlines(keepends=True)
    head = _first_line(stub_fn) - 1
    stub_before = "".join(stub_lines[:head])
    stub_header = "".join(stub_lines[head:]).rstrip("\n") + "\n"
    stub_imports = {ast.dump(n) for n in stub_tree.body if isinstance(n, ast.Import | ast.ImportFrom)}

    i = tree.body.index(fn)
    before = [n for n in tree.body[:i] if ast.dump(n) not in stub_imports]
    after = [n for n in tree.body[i + 1 :] if not _example_usage(n)]
    if before:  # the solution's helpers go between the stub's imports and its function
        parts = [stub_before, *(_segment(lines, n) for n in before), stub_header + body_text]
    else:  # the stub verbatim, then the body: the completion solver's t2s prefix is exactly this stub
        parts = ["".join(stub_lines).rstrip("\n") + "\n" + body_text]
    parts += [_segment(lines, n) for n in after]
    aligned = "\n".join(p.strip("\n") + "\n" for p in parts if p.strip())
    return aligned if _same_behaviour(tree, aligned, fn.name, before, after) else code


def _body(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> list[ast.stmt]:
    """The function's statements after its docstring (all of them when it has none)."""
    return fn.body[1:] if ast.get_docstring(fn, clean=False) is not None else fn.body


def _named(node: ast.stmt, name: str) -> TypeGuard[ast.FunctionDef | ast.AsyncFunctionDef]:
    return isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name


def _first_line(node: ast.stmt) -> int:
    decorators = getattr(node, "decorator_list", [])
    return min([node.lineno, *(d.lineno for d in decorators)])


def _segment(lines: list[str], node: ast.stmt) -> str:
    return "".join(lines[_first_line(node) - 1 : node.end_lineno])


def _example_usage(node: ast.stmt) -> bool:
    """A top-level ``assert``, ``print(...)`` or ``if __name__ == "__main__":`` block."""
    if isinstance(node, ast.Assert):
        return True
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        return isinstance(node.value.func, ast.Name) and node.value.func.id == "print"
    return is_main_guard(node)


def _same_behaviour(
    tree: ast.Module, aligned: str, name: str, before: list[ast.stmt], after: list[ast.stmt]
) -> bool:
    """The aligned program parses, and its function body (docstring aside) and its other kept top-level
    statements are the solution's, node for node."""
    try:
        new = ast.parse(aligned)
    except SyntaxError:
        return False

    def body_of(mod: ast.Module) -> list[str]:
        return [ast.dump(n) for n in _body(next(n for n in mod.body if _named(n, name)))]

    kept = {ast.dump(n) for n in (*before, *after)}
    new_rest = {ast.dump(n) for n in new.body if not _named(n, name)}
    return body_of(new) == body_of(tree) and kept <= new_rest
