"""The two-stage prompts (paper §4.2: problem → thought, thought → solution), read from ``assets/prompts``.

Base (non-instruction-tuned) models get a completion frame with two worked examples and code-fence stops;
instruction-tuned models get chat turns. ``extract_code`` pulls the program out of what the model wrote.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Literal

from ..resources import assets_dir

PromptStyle = Literal["completion", "chat"]

ASSETS_DIR = assets_dir()
PROMPTS_DIR = ASSETS_DIR / "prompts"


@cache
def _template(name: str) -> str:
    # Files end with a newline; a completion prompt must end exactly where the model continues
    # ("1." for the plan, "```python\n" for the code), or a base model starts a new line and rambles.
    return (PROMPTS_DIR / name).read_text(encoding="utf-8").rstrip("\n")


@dataclass(frozen=True)
class StagePrompt:
    text: str
    stops: tuple[str, ...]
    prefix: str = ""  # text the prompt already "said" that belongs to the answer (e.g. "1.")


def thought_prompt(problem: str, style: PromptStyle) -> StagePrompt:
    if style == "chat":
        return StagePrompt(_template("p2t_chat.txt").format(task=chat_task(problem)), stops=("```",))
    text = _template("p2t_completion.txt").format(problem=problem.strip())
    return StagePrompt(text, stops=("\n### ", "###", "```", "\n\n", "\n5."), prefix="1.")


def direct_prompt(problem: str) -> StagePrompt:
    """One chat turn, no plan: what an instruction-tuned coder answers best on its own (``solver.plan=off``)."""
    return StagePrompt(
        _template("direct_chat.txt").format(task=chat_task(problem), reply=_reply(problem)), ()
    )


def retry_prompt(problem: str, failure: str) -> StagePrompt:
    """One chat turn asking again, told which stated example the previous answer failed and how
    (``solver.repair_rounds``). The failed code is not shown: a small model shown its code copies it."""
    text = _template("repair_chat.txt").format(
        task=chat_task(problem), failure=failure.strip(), reply=_reply(problem)
    )
    return StagePrompt(text, ())


def chat_task(problem: str) -> str:
    """The problem as a chat user states it: a stub to complete is shown as code, anything else as text."""
    stub = code_stub(problem)
    if stub:
        return "Complete the following Python function:\n```python\n" + stub + "```"
    return problem.strip()


def _reply(problem: str) -> str:
    if code_stub(problem):
        return (
            "Reply with a single ```python code block holding the complete function, with the imports it needs "
            "and no example usage."
        )
    return "Reply with a single ```python code block holding the complete program."


# After a function stub, the next top-level statement ends the body (the usual HumanEval stops, minus
# "\ndef" so helper functions survive).
STUB_STOPS = ("\n```", "\n### ", "\nclass ", "\nif __name__", "\nprint(", "\n#", "\nassert ")


def code_stub(problem: str) -> str | None:
    """The problem itself when it is a Python stub to complete (HumanEval style), else None.

    A stub parses as Python and ends in a function whose body is only a docstring (or ``pass``/``...``).
    The solver then continues the stub instead of writing code from scratch: a small base model is far
    better at completing a signature than at restating it.
    """
    import ast

    text = problem.strip("\n")
    if "def " not in text:
        return None
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return None
    funcs = [n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    if not funcs or tree.body[-1] is not funcs[-1]:
        return None
    body = funcs[-1].body
    trivial = all(
        isinstance(n, ast.Pass)
        or (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) and n.value.value in (Ellipsis,))
        or (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) and isinstance(n.value.value, str))
        for n in body
    )
    return text.rstrip() + "\n" if trivial else None


def solution_prompt(problem: str, thought: str, style: PromptStyle) -> StagePrompt:
    stub = code_stub(problem)
    if style == "chat":
        text = _template("t2s_chat.txt").format(
            task=chat_task(problem), thought=thought.strip(), reply=_reply(problem)
        )
        return StagePrompt(text, stops=())
    text = _template("t2s_completion.txt").format(problem=problem.strip(), thought=thought.strip()) + "\n"
    if stub:
        return StagePrompt(text + stub, stops=STUB_STOPS, prefix=stub)
    return StagePrompt(text, stops=("\n```", "\n### "))


_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)


def extract_code(text: str, entry_point: str | None = None) -> str:
    """The program in what the model wrote: the fenced python block (the one defining ``entry_point`` when
    several exist), else the first fenced block, else the whole text, stripped of stray fences."""
    blocks = _FENCE.findall(text)
    if blocks:
        python = [body for lang, body in blocks if lang.lower() in ("python", "py", "python3")]
        candidates = python or [blocks[0][1]]
        if entry_point and len(candidates) > 1:
            defining = [b for b in candidates if re.search(rf"^\s*def {re.escape(entry_point)}\(", b, re.M)]
            candidates = defining or candidates
        return candidates[0].strip("\n").rstrip() + "\n"
    return text.replace("```", "").strip("\n").rstrip() + "\n" if text.strip() else ""


def strip_demo(code: str) -> str:
    """Drop what an instruct model adds around a function it was asked for: ``if __name__ == "__main__":``
    blocks and top-level calls (``print(f(3))``, ``main()``, ``input()``), which would run — or wait for
    stdin — when the function is imported by a test — with the comment lines right above them ("# Example
    usage:"). Definitions, imports and constants stay."""
    import ast

    from ..pysource import is_main_guard

    try:
        tree = ast.parse(code)
    except SyntaxError:
        return code
    lines = code.splitlines(keepends=True)
    drop: list[tuple[int, int]] = []
    for node in tree.body:
        is_main = is_main_guard(node)
        is_call = isinstance(node, ast.Expr) and isinstance(node.value, ast.Call | ast.Await)
        if (is_main or is_call) and node.end_lineno is not None:
            start = node.lineno
            while start > 1 and lines[start - 2].lstrip().startswith("#"):  # "# Example usage:" above it
                start -= 1
            drop.append((start, node.end_lineno))
    if not drop:
        return code
    keep = [ln for i, ln in enumerate(lines, 1) if not any(a <= i <= b for a, b in drop)]
    return "".join(keep).rstrip() + "\n"
