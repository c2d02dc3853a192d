"""Trajectory → the two SFT pairs (p2t, t2s), written with the *app's* solver prompts.

Why the app's prompts: the experts and the hypernetwork are trained on exactly the text the solver will
feed the model at answer time (``bdc_assistant.solver.prompts``), including the completion frame's
"1." plan prefix and its stop markers, so the trained model learns to stop where the solver cuts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from bdc_assistant.solver import prompts as app_prompts

from .data import Trajectory
from .targets import align_to_stub

Style = Literal["completion", "chat"]
PairKind = Literal["p2t", "t2s", "p2s"]
ALL_KINDS: tuple[PairKind, ...] = ("p2t", "t2s", "p2s")


@dataclass(frozen=True)
class Pair:
    kind: PairKind
    prompt: str
    target: str
    problem: str  # the text the hypernetwork sees (the user's problem) — the same for both stages
    record: int  # index of the trajectory it came from


def numbered_plan(thought: str) -> str:
    """A thought as the solver's numbered plan ("1. …\\n2. …"): existing numbering is kept."""
    text = thought.strip()
    if re.match(r"^\s*1\.", text):
        return "\n".join(ln.rstrip() for ln in text.splitlines() if ln.strip())
    lines = [ln.strip(" -*\t") for ln in text.splitlines() if ln.strip()]
    if len(lines) <= 1:
        lines = [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if s.strip()]
    return "\n".join(f"{i}. {s}" for i, s in enumerate(lines, 1))


def pairs_for(rec: Trajectory, index: int, style: Style, *, align: bool = True) -> list[Pair]:
    """The pairs of one trajectory, shaped like the solver's prompts and stops.

    Chat style gives three: p2t and t2s (the two-stage answer, ``solver.plan = on``) and p2s, the problem
    straight to the code block in the solver's one-turn prompt (``solver.plan = off``, what an instruction-tuned
    coder ships with when the plan stage does not win on validation). Train on the kinds the app will use
    (``sft.pair_kinds``): an expert tuned only on plan-then-code never sees the prompt it answers in one turn.

    Completion style: the plan continues the frame's "1." and ends with the blank line the solver stops
    on; the code ends with the closing fence. When the problem is a code stub (HumanEval/MBPP style) the
    solver's t2s prompt already contains the stub and the model writes only the body — so the target is
    the body; a solution that does not start with the stub gives no t2s pair (it would teach the model to
    restate the program after the stub).

    ``align`` (``sft.align_to_stub``): a stub problem's solution is first rebuilt around the stub's own
    header, without example usage (:mod:`.targets`), so the target is what the prompt asks for.
    """
    plan = numbered_plan(rec.thought) or "1. Solve it directly."
    code = (
        app_prompts.extract_code(rec.solution) if "```" in rec.solution else rec.solution.strip("\n") + "\n"
    )
    stub = app_prompts.code_stub(rec.problem) if align else None
    if stub:
        code = align_to_stub(code, stub)
    p2t = app_prompts.thought_prompt(rec.problem, style)
    t2s = app_prompts.solution_prompt(rec.problem, plan, style)
    if style == "chat":
        block = "```python\n" + code.rstrip("\n") + "\n```"
        return [
            Pair("p2t", p2t.text, plan, rec.problem, index),
            Pair("t2s", t2s.text, block, rec.problem, index),
            Pair("p2s", app_prompts.direct_prompt(rec.problem).text, block, rec.problem, index),
        ]
    thought_target = plan[len(p2t.prefix) :] if plan.startswith(p2t.prefix) else " " + plan
    out = [Pair("p2t", p2t.text, thought_target + "\n\n", rec.problem, index)]
    if t2s.prefix:  # a stub: the prompt ends with it, the target is the body
        if code.startswith(t2s.prefix):
            body = code[len(t2s.prefix) :].rstrip("\n")
            if body.strip():
                out.append(Pair("t2s", t2s.text, body + "\n```", rec.problem, index))
        return out
    out.append(Pair("t2s", t2s.text, code.rstrip("\n") + "\n```", rec.problem, index))
    return out


def build_pairs(
    records: list[Trajectory], style: Style, kinds: Iterable[str] = ALL_KINDS, *, align: bool = True
) -> list[Pair]:
    """Every pair of ``kinds`` from ``records`` (completion style has no p2s: its solver always plans)."""
    wanted = set(kinds)
    out: list[Pair] = []
    for i, rec in enumerate(records):
        out.extend(p for p in pairs_for(rec, i, style, align=align) if p.kind in wanted)
    return out
