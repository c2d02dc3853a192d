"""Compare search methods at an equal LLM-call budget on a dataset (``bdc deep-bench``).

Methods, each run through the same :class:`~.runner.DeepRunner` (so every tree is stored and exportable):
  * ``zero-shot[A]``: agent A's direct solve (the root simulation only; 1 call; the floor);
  * ``single[A]``: MC-ToA with agent A alone, prune and refine on, at the budget;
  * ``mc-toa``: all agents, no prune, no refine;
  * ``mc-toa+prune``; ``mc-toa+prune+refine``.
The final program of each run is then scored on the problem's *private* tests, after the search, in the
sandbox; AC = share of problems where it passes them all, PR = mean private pass fraction. Shared calls
(the same prompt to the same model) are served from the response cache but still count against each
method's budget, so every method gets the same logical budget.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..types import Problem
from .llm import Budgets
from .providers.presets import AgentSpec
from .runner import DeepRunner, search_config


@dataclass(frozen=True)
class Method:
    name: str
    agents: tuple[AgentSpec, ...]
    overrides: dict[str, Any]
    max_calls: int


@dataclass
class MethodScore:
    problems: int = 0
    accepted: int = 0
    private_pr_sum: float = 0.0
    public_pr_sum: float = 0.0
    calls: int = 0
    pruned: int = 0
    refined: int = 0
    wall_s: float = 0.0
    stopped_by: dict[str, int] = field(default_factory=dict)
    run_ids: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        n = max(self.problems, 1)
        return {
            "ac": round(100 * self.accepted / n, 2),
            "pr": round(100 * self.private_pr_sum / n, 2),
            "public_pr": round(100 * self.public_pr_sum / n, 2),
            "problems": self.problems,
            "calls": self.calls,
            "calls_per_problem": round(self.calls / n, 2),
            "pruned": self.pruned,
            "refined": self.refined,
            "wall_s": round(self.wall_s, 1),
            "stopped_by": self.stopped_by,
        }


def methods_for(agents: Sequence[AgentSpec], max_calls: int) -> list[Method]:
    out = [Method(f"zero-shot[{a.name}]", (a,), {"rollouts": 0}, 1) for a in agents]
    if len(agents) > 1:
        out += [Method(f"single[{a.name}]", (a,), {"prune": True, "refine": True}, max_calls) for a in agents]
    everyone = tuple(agents)
    out += [
        Method("mc-toa", everyone, {"prune": False, "refine": False}, max_calls),
        Method("mc-toa+prune", everyone, {"prune": True, "refine": False}, max_calls),
        Method("mc-toa+prune+refine", everyone, {"prune": True, "refine": True}, max_calls),
    ]
    return out


def private_score(sandbox: Any, problem: Problem, code: str) -> float:
    if not problem.private_tests or not code.strip():
        return 0.0
    verdicts = sandbox.run_tests(code, problem.private_tests, checker=problem.checker)
    return sum(v.passed for v in verdicts) / len(verdicts)


def run_bench(
    runner: DeepRunner,
    problems: Sequence[Problem],
    agents: Sequence[AgentSpec],
    *,
    max_calls: int,
    budget_usd: float,
    sandbox: Any,
    on_progress: Callable[[str], None] = lambda s: None,
    consent: Callable[[str], None] = lambda run_id: None,
) -> dict[str, Any]:
    t0 = time.monotonic()
    methods = methods_for(agents, max_calls)
    scores = {m.name: MethodScore() for m in methods}
    for i, problem in enumerate(problems):
        if not problem.public_tests:
            on_progress(f"[{i + 1}/{len(problems)}] {problem.id}: skipped (no public tests)")
            continue
        parts = []
        for m in methods:
            from ..store.runs import new_run_id

            run_id = new_run_id()
            consent(run_id)
            start = time.monotonic()
            config = replace(search_config(runner.settings), **m.overrides)
            result = runner.run(
                problem,
                list(m.agents),
                Budgets(max_calls=m.max_calls, budget_usd=budget_usd),
                config=config,
                run_id=run_id,
                generate_tests=0,
            )
            private = private_score(sandbox, problem, result.best_code)
            s = scores[m.name]
            s.problems += 1
            s.accepted += int(private >= 1.0)
            s.private_pr_sum += private
            s.public_pr_sum += result.public_pass_rate
            s.calls += result.calls
            s.pruned += result.pruned
            s.refined += result.refined
            s.wall_s += time.monotonic() - start
            s.stopped_by[result.stopped_by] = s.stopped_by.get(result.stopped_by, 0) + 1
            s.run_ids.append(result.run_id)
            parts.append(f"{m.name}={'AC' if private >= 1.0 else f'{private:.2f}'}")
        on_progress(f"[{i + 1}/{len(problems)}] {problem.id}: " + " ".join(parts))
    return {
        "problems": len(problems),
        "max_calls": max_calls,
        "agents": [a.name for a in agents],
        "methods": {name: s.as_dict() for name, s in scores.items()},
        "wall_s": round(time.monotonic() - t0, 1),
    }
