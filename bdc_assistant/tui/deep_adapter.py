"""Deep mode as the TUI sees it: fold the deep runner's typed events (:mod:`bdc_assistant.deep.events`)
into :class:`DeepProgress` snapshots the deep screen redraws, and run :class:`DeepRunner` for a request.

Only the real engine and the tests import this module (inside a worker for the engine), so the first
frame never pays for the deep package.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ..deep import events as ev
from .engine import DeepNode, DeepProgress, DeepRequest

if TYPE_CHECKING:
    from ..config import Settings
    from ..types import CancelToken


@dataclass
class DeepTracker:
    """Accumulates deep events into the snapshot the deep screen draws."""

    max_calls: int = 0
    budget_usd: float = 0.0
    max_tokens: int = 0
    method: str = "mc-toa"
    started: float = field(default_factory=time.monotonic)
    nodes: dict[str, DeepNode] = field(default_factory=dict)
    calls: int = 0
    spend_usd: float = 0.0
    tokens: int = 0
    best_pr: float | None = None
    best_code: str = ""
    done: bool = False
    stop_reason: str = ""
    run_id: str | None = None

    def apply(self, event: ev.DeepEvent) -> DeepProgress:
        match event:
            case ev.RunStarted(run_id=run_id):
                self.run_id = run_id
            case ev.NodeAdded(node_id=nid, parent_id=parent, thought=thought, author=author):
                label = " ".join(thought.split())[:70] or "(root)"
                prefix = f"{author}: " if author else ""
                self.nodes[str(nid)] = DeepNode(
                    str(nid), None if parent is None else str(parent), prefix + label
                )
            case ev.NodeSimulated(node_id=nid, pass_rate=pr, best_pass_rate=best):
                self._update(str(nid), pr=pr)
                self.best_pr = max(self.best_pr or 0.0, best)
            case ev.NodePruned(node_id=nid, pass_rate=pr):
                self._update(str(nid), pruned=True, pr=pr)
            case ev.NodeRefined(ill_node_id=ill, new_node_id=new):
                self._update(str(ill), refined=True)
                self._update(str(new), refined=True)
            case ev.RolloutDone(best_public_pass_rate=best, calls=calls, spend_usd=spend):
                self.best_pr = best
                self._spent(calls, spend)
            case ev.Spend(calls=calls, spend_usd=spend, tokens_in=tin, tokens_out=tout):
                self._spent(calls, spend)
                self.tokens = max(self.tokens, tin + tout)
            case ev.Finished(stopped_by=stopped_by, public_pass_rate=pr, result=result):
                self.done, self.stop_reason, self.best_pr = True, stopped_by, pr
                self.best_code = str(result.get("best_code") or "")
        return self.snapshot()

    def _spent(self, calls: int, spend_usd: float) -> None:
        self.calls = max(self.calls, calls)
        self.spend_usd = max(self.spend_usd, spend_usd)

    def _update(self, nid: str, **changes: Any) -> None:
        node = self.nodes.get(nid) or DeepNode(nid, None, f"node {nid}")
        self.nodes[nid] = replace(node, **changes)

    def snapshot(self) -> DeepProgress:
        return DeepProgress(
            nodes=tuple(self.nodes.values()),
            calls=self.calls,
            max_calls=self.max_calls,
            spend_usd=self.spend_usd,
            budget_usd=self.budget_usd,
            tokens=self.tokens,
            max_tokens=self.max_tokens,
            method=self.method,
            elapsed_s=time.monotonic() - self.started,
            best_pr=self.best_pr,
            best_code=self.best_code,
            done=self.done,
            stop_reason=self.stop_reason,
            run_id=self.run_id,
        )


def run_deep(
    settings: Settings, request: DeepRequest, on_progress: Callable[[DeepProgress], None], cancel: CancelToken
) -> DeepProgress:
    """Run the real deep search (blocking; call from a worker thread) and return the final snapshot."""
    from ..deep.llm import Budgets
    from ..deep.runner import DeepRunner, search_config
    from ..types import Problem

    tracker = DeepTracker(
        max_calls=request.max_calls,
        budget_usd=request.budget_usd,
        max_tokens=settings.deep.max_tokens_total,
        method=request.method,
    )
    problem = Problem(id="tui", statement=request.problem, public_tests=request.tests)
    budgets = Budgets(
        max_calls=request.max_calls,
        budget_usd=request.budget_usd,
        max_tokens_total=settings.deep.max_tokens_total,
        wall_clock_s=settings.deep.wall_clock_s,
    )
    runner = DeepRunner(settings=settings.deep)
    try:
        result = runner.run(
            problem,
            list(request.agents),
            budgets,
            on_event=lambda e: on_progress(tracker.apply(e)),
            cancel=cancel,
            config=search_config(settings.deep, method=request.method),
        )
    finally:
        runner.store.close()
    return replace(
        tracker.snapshot(),
        best_code=result.best_code or tracker.best_code,
        best_pr=result.public_pass_rate,
        calls=max(tracker.calls, result.calls),
        spend_usd=max(tracker.spend_usd, result.spend_usd),
        stop_reason=result.stopped_by,
        run_id=result.run_id,
        done=True,
    )
