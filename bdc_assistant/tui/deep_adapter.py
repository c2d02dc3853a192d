"""Deep mode as the TUI sees it: fold the deep runner's typed events (:mod:`bdc_assistant.deep.events`)
into :class:`DeepProgress` snapshots the deep screen redraws, and run :class:`DeepRunner` for a request.

Events are matched by class name, so this module imports nothing from ``deep`` until a run starts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from .engine import DeepNode, DeepProgress, DeepRequest

if TYPE_CHECKING:
    from ..backends.base import CancelToken
    from ..config import Settings


@dataclass
class DeepTracker:
    """Accumulates deep events into the snapshot the deep screen draws."""

    max_calls: int = 0
    budget_usd: float = 0.0
    started: float = field(default_factory=time.monotonic)
    nodes: dict[str, DeepNode] = field(default_factory=dict)
    calls: int = 0
    spend_usd: float = 0.0
    best_pr: float | None = None
    best_code: str = ""
    done: bool = False
    stop_reason: str = ""
    run_id: str | None = None

    def apply(self, ev: Any) -> DeepProgress:
        kind = type(ev).__name__
        if kind == "RunStarted":
            self.run_id = str(ev.run_id)
        elif kind == "NodeAdded":
            nid = str(ev.node_id)
            label = " ".join(str(ev.thought).split())[:70] or "(root)"
            author = f"{ev.author}: " if getattr(ev, "author", None) else ""
            parent = None if ev.parent_id is None else str(ev.parent_id)
            self.nodes[nid] = DeepNode(nid, parent, author + label)
        elif kind == "NodeSimulated":
            self._update(str(ev.node_id), pr=float(ev.pass_rate))
            self.best_pr = max(self.best_pr or 0.0, float(ev.best_pass_rate))
        elif kind == "NodePruned":
            self._update(str(ev.node_id), pruned=True, pr=float(ev.pass_rate))
        elif kind == "NodeRefined":
            self._update(str(ev.ill_node_id), refined=True)
            self._update(str(ev.new_node_id), refined=True)
        elif kind == "RolloutDone":
            self.best_pr = float(ev.best_public_pass_rate)
            self.calls = max(self.calls, int(ev.calls))
            self.spend_usd = max(self.spend_usd, float(ev.spend_usd))
        elif kind == "Spend":
            self.calls = max(self.calls, int(ev.calls))
            self.spend_usd = max(self.spend_usd, float(ev.spend_usd))
        elif kind == "Finished":
            self.done = True
            self.stop_reason = str(ev.stopped_by)
            self.best_pr = float(ev.public_pass_rate)
            result = ev.result if isinstance(ev.result, dict) else {}
            self.best_code = str(
                result.get("code") or result.get("best_code") or result.get("solution") or ""
            )
        return self.snapshot()

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
    from ..deep.runner import DeepRunner
    from ..types import Problem

    tracker = DeepTracker(max_calls=request.max_calls, budget_usd=request.budget_usd)

    def on_event(ev: Any) -> None:
        on_progress(tracker.apply(ev))

    problem = Problem(id="tui", statement=request.problem, public_tests=request.tests)
    deep = settings.deep
    budgets = Budgets(
        max_calls=request.max_calls,
        budget_usd=request.budget_usd,
        max_tokens_total=int(getattr(deep, "max_tokens_total", 0) or 0),
        wall_clock_s=float(getattr(deep, "wall_clock_s", 0.0) or 0.0),
    )
    runner = DeepRunner(settings=deep)
    try:
        result = runner.run(problem, list(request.agents), budgets, on_event=on_event, cancel=cancel)
    finally:
        store = getattr(runner, "store", None)
        if store is not None:
            store.close()
    final = tracker.snapshot()
    return replace(
        final,
        best_code=result.best_code or final.best_code,
        best_pr=result.public_pass_rate,
        calls=max(final.calls, result.calls),
        spend_usd=max(final.spend_usd, float(getattr(result, "spend_usd", 0.0))),
        stop_reason=result.stopped_by,
        run_id=result.run_id,
        done=True,
    )
