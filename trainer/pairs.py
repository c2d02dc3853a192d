"""Trajectory → the two SFT pairs (p2t, t2s), written with the *app's* solver prompts.

Why the app's prompts: the experts and the hypernetwork are trained on exactly the text the solver will
feed the model at answer time (``bdc_assistant.solver.prompts``), including the completion frame's
"1." plan prefix and its stop markers, so the trained model learns to stop where the solver cuts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from bdc_assistant.solver import prompts as app_prompts

from .data import Trajectory

Style = Literal["completion", "chat"]


@dataclass(frozen=True)
class Pair:
    kind: Literal["p2t", "t2s"]
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


def pairs_for(rec: Trajectory, index: int, style: Style) -> list[Pair]:
    plan = numbered_plan(rec.thought) or "1. Solve it directly."
    code = (
        app_prompts.extract_code(rec.solution) if "```" in rec.solution else rec.solution.strip("\n") + "\n"
    )
    p2t = app_prompts.thought_prompt(rec.problem, style)
    t2s = app_prompts.solution_prompt(rec.problem, plan, style)
    if style == "completion":
        # the prompt ends with "1."; the model continues the plan and then starts the next section, which
        # the solver's stop string "\n### " cuts; the code ends with the fence the t2s stop "\n```" cuts.
        thought_target = plan[len(p2t.prefix) :] if plan.startswith(p2t.prefix) else " " + plan
        return [
            Pair("p2t", p2t.text, thought_target + "\n### Solution", rec.problem, index),
            Pair("t2s", t2s.text, code.rstrip("\n") + "\n```", rec.problem, index),
        ]
    return [
        Pair("p2t", p2t.text, plan, rec.problem, index),
        Pair("t2s", t2s.text, "```python\n" + code.rstrip("\n") + "\n```", rec.problem, index),
    ]


def build_pairs(records: list[Trajectory], style: Style) -> list[Pair]:
    out: list[Pair] = []
    for i, rec in enumerate(records):
        out.extend(pairs_for(rec, i, style))
    return out
