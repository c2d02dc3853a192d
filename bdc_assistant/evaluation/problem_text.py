"""What the solver is shown for a dataset problem: the statement plus what a user would also give it.

* MBPP statements are often ambiguous without their example (the original MBPP prompt shows the tests): the
  public example assert goes into the docstring, so the problem stays a function stub to complete.
* CodeContests problems say explicitly that the program reads stdin and writes stdout.
Only public tests are ever shown; private tests stay for scoring.
"""

from __future__ import annotations

import ast

from ..pysource import asserted_function, defines
from ..types import Problem

STDIO_NOTE = "Write a Python 3 program that reads the input from standard input and prints the answer to standard output."


def solver_text(problem: Problem) -> str:
    if problem.kind == "stdio":
        # The codecontests-repo layout appends how to run its own harness (run.sh, uv): not the user's problem.
        statement = problem.statement.split("\n## Testing", 1)[0]
        return statement.rstrip() + "\n\n" + STDIO_NOTE
    # selfinstruct: the MBPP-style exercises of trainer.synthesize, shown as an MBPP problem is
    if problem.source in ("mbpp", "selfinstruct") and problem.public_tests:
        example = _example_assert(problem.public_tests[0].input)
        if example:
            note = f"Your code should pass this test:\n{example}"
            called = asserted_function(example)
            if called is not None and not defines(problem.statement, called):
                # Some stubs in this layout are a helper of the reference solution, not the function the test
                # calls: shown that stub, the model writes the helper. Show the task and the test, as MBPP does.
                return f"{function_docstring(problem.statement) or problem.statement.strip()}\n{note}"
            return _into_docstring(problem.statement, note)
    return problem.statement


def function_docstring(source: str) -> str | None:
    """The docstring of the last function of ``source``, dedented (the task in words)."""
    try:
        funcs = [n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    except SyntaxError:
        return None
    return ast.get_docstring(funcs[-1]) if funcs else None


def _example_assert(test_input: str) -> str:
    """The assert line of a public call test (``candidate = f`` lines are the harness's, not the user's)."""
    lines = [ln for ln in test_input.splitlines() if ln.strip().startswith("assert")]
    return "\n".join(ln.strip() for ln in lines)


def _into_docstring(stub: str, note: str) -> str:
    """Insert ``note`` at the end of the last function's docstring (the line holding its closing quotes)."""
    try:
        tree = ast.parse(stub)
    except SyntaxError:
        return stub.rstrip() + "\n# " + note.replace("\n", "\n# ") + "\n"
    funcs = [n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    if not funcs:
        return stub
    body = funcs[-1].body
    doc = (
        body[0]
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
        else None
    )
    lines = stub.splitlines(keepends=True)
    if doc is None or doc.end_lineno is None:
        return stub
    close = lines[doc.end_lineno - 1]
    stripped = close.strip()
    indent = close[: len(close) - len(close.lstrip())]
    block = "".join(indent + ln + "\n" for ln in note.splitlines())
    if stripped in ('"""', "'''"):
        return "".join(lines[: doc.end_lineno - 1]) + block + "".join(lines[doc.end_lineno - 1 :])
    quote = stripped[-3:]
    if doc.lineno == doc.end_lineno and quote in ('"""', "'''") and stripped.startswith(quote):
        # a one-line docstring: open it up so the note sits inside it
        opened = f"{indent}{quote}{stripped[3:-3]}\n{block}{indent}{quote}\n"
        return "".join(lines[: doc.lineno - 1]) + opened + "".join(lines[doc.end_lineno :])
    return stub
