"""Typed events of a deep-mode run, delivered through one callback (the CLI prints them, the TUI draws a
live tree from them). Frozen dataclasses, in the order they happen; nothing else crosses that boundary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RunStarted:
    run_id: str
    problem_id: str
    agents: tuple[str, ...]
    resumed: bool = False


@dataclass(frozen=True)
class NodeAdded:
    node_id: int
    parent_id: int | None
    thought: str
    author: str | None
    prior: float
    rollout: int


@dataclass(frozen=True)
class NodeSimulated:
    node_id: int
    pass_rate: float
    best_pass_rate: float
    n_solutions: int
    terminal: bool
    rollout: int


@dataclass(frozen=True)
class NodePruned:
    node_id: int
    pass_rate: float
    parent_pass_rate: float
    rollout: int


@dataclass(frozen=True)
class NodeRefined:
    ill_node_id: int
    new_node_id: int
    critic: str
    author: str
    summary: str
    rollout: int


@dataclass(frozen=True)
class RolloutDone:
    rollout: int
    best_public_pass_rate: float
    nodes: int
    calls: int
    spend_usd: float


@dataclass(frozen=True)
class Spend:
    """After every LLM call (cache hits included: they count against the logical budget)."""

    agent: str
    phase: str
    calls: int
    tokens_in: int
    tokens_out: int
    spend_usd: float
    cached: bool


@dataclass(frozen=True)
class Finished:
    run_id: str
    stopped_by: str
    public_pass_rate: float
    result: dict[str, Any]


DeepEvent = RunStarted | NodeAdded | NodeSimulated | NodePruned | NodeRefined | RolloutDone | Spend | Finished
