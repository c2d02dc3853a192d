"""The MC-Tree-of-Agents tree as plain data, plus the pure arithmetic of the search.

Everything here is deterministic and free of I/O: scores (PUCB, eq. 3 of the paper, and the authors'
``var_p_ucb``), prior normalisation, backup, the prune test and the final-answer rule. ``search.py``
drives these over injected policies and an evaluator; tests pin them with golden trees.

A node is an ordered thought list with the author policy of each thought (``thoughts``/``authors``).
Node ids are a per-problem counter in creation order, so a replay builds the same ids.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

NodeStatus = Literal["open", "terminal", "ill", "replaced", "exhausted"]


@dataclass(frozen=True)
class Proposal:
    """One next thought proposed by a policy, with its self-reported reasonableness (raw prior)."""

    thought: str
    score: float | None = None


@dataclass(frozen=True)
class Solution:
    """One program written by one policy from one state, and its public-test outcome."""

    policy: str
    sample: int
    code: str
    pass_rate: float
    statuses: tuple[str, ...] = ()


@dataclass
class Node:
    id: int
    parent: int | None
    thoughts: tuple[str, ...]
    authors: tuple[str, ...]
    prior: float
    created_rollout: int
    status: NodeStatus = "open"
    visits: int = 0
    returns: list[float] = field(default_factory=list)
    children: list[int] = field(default_factory=list)
    expanded: bool = False
    simulated: bool = False
    pr: float | None = None
    solutions: list[Solution] = field(default_factory=list)
    refines: int = 0  # refines already spent on this tree slot (carried to the replacement)
    refined_from: int | None = None
    replaced_by: int | None = None
    reason: str = ""  # why it is ill / exhausted / terminal

    @property
    def depth(self) -> int:
        return len(self.thoughts)

    @property
    def selectable(self) -> bool:
        return self.status in ("open", "terminal")

    def best_solution(self) -> Solution | None:
        """Highest public pass rate; ties go to the first in (policy order, sample) order."""
        best: Solution | None = None
        for sol in self.solutions:
            if best is None or sol.pass_rate > best.pass_rate:
                best = sol
        return best

    def worst_solution(self) -> Solution | None:
        worst: Solution | None = None
        for sol in self.solutions:
            if worst is None or sol.pass_rate < worst.pass_rate:
                worst = sol
        return worst

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["thoughts"] = list(self.thoughts)
        data["authors"] = list(self.authors)
        data["solutions"] = [asdict(s) | {"statuses": list(s.statuses)} for s in self.solutions]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Node:
        data = dict(data)
        data["thoughts"] = tuple(data["thoughts"])
        data["authors"] = tuple(data["authors"])
        data["solutions"] = [
            Solution(**(s | {"statuses": tuple(s.get("statuses", ()))})) for s in data["solutions"]
        ]
        return cls(**data)


@dataclass
class Tree:
    """All nodes of one problem's search plus the counters that must survive a checkpoint."""

    nodes: dict[int, Node] = field(default_factory=dict)
    next_id: int = 0
    rollout: int = 0  # rollouts completed (the root simulation is rollout 0)
    refines_total: int = 0
    refines_effective: int = 0  # the replacement was no longer ill
    refines_failed: int = 0  # a refine call or re-simulation that stayed ill
    pruned_total: int = 0
    idle: int = 0  # rollouts in a row that did no work (see SearchConfig.idle_rollouts)

    def add(
        self,
        parent: int | None,
        thoughts: Sequence[str],
        authors: Sequence[str],
        prior: float,
        *,
        refines: int = 0,
        refined_from: int | None = None,
    ) -> Node:
        node = Node(
            id=self.next_id,
            parent=parent,
            thoughts=tuple(thoughts),
            authors=tuple(authors),
            prior=prior,
            created_rollout=self.rollout,
            refines=refines,
            refined_from=refined_from,
        )
        self.nodes[node.id] = node
        self.next_id += 1
        return node

    @property
    def root(self) -> Node:
        return self.nodes[0]

    def path(self, node_id: int) -> list[Node]:
        """Root → node."""
        out: list[Node] = []
        cur: int | None = node_id
        while cur is not None:
            node = self.nodes[cur]
            out.append(node)
            cur = node.parent
        return out[::-1]

    def to_json(self) -> dict[str, Any]:
        return {
            "nodes": [n.to_json() for n in sorted(self.nodes.values(), key=lambda n: n.id)],
            "next_id": self.next_id,
            "rollout": self.rollout,
            "refines_total": self.refines_total,
            "refines_effective": self.refines_effective,
            "refines_failed": self.refines_failed,
            "pruned_total": self.pruned_total,
            "idle": self.idle,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Tree:
        tree = cls(
            next_id=data["next_id"],
            rollout=data["rollout"],
            refines_total=data["refines_total"],
            refines_effective=data["refines_effective"],
            refines_failed=data["refines_failed"],
            pruned_total=data["pruned_total"],
            idle=data.get("idle", 0),  # absent in checkpoints written before this counter existed
        )
        for raw in data["nodes"]:
            node = Node.from_json(raw)
            tree.nodes[node.id] = node
        return tree


# ---- pure arithmetic ------------------------------------------------------------------------------------


def normalize_priors(proposals_per_policy: Sequence[Sequence[Proposal]]) -> list[list[float]]:
    """Priors P(a|S): each policy's scores normalised to sum 1, then divided by the number of policies.

    A policy whose scores are missing, negative or all zero gets a uniform split (its parse failure is
    counted by the caller). So the priors of all children of a node sum to 1 over policies that proposed.
    """
    k = max(len(proposals_per_policy), 1)
    out: list[list[float]] = []
    for props in proposals_per_policy:
        if not props:
            out.append([])
            continue
        raw = [p.score for p in props]
        scores = [float(s) for s in raw if s is not None and math.isfinite(s) and s >= 0]
        if len(scores) != len(raw) or sum(scores) <= 0:
            out.append([1.0 / (len(props) * k)] * len(props))
        else:
            total = sum(scores)
            out.append([s / total / k for s in scores])
    return out


def q_value(returns: Sequence[float], mode: str) -> float:
    """Q(S) from the returns backed up through S; 0 for an unvisited node."""
    if not returns:
        return 0.0
    return max(returns) if mode == "max" else sum(returns) / len(returns)


def pucb(q: float, prior: float, parent_visits: int, child_visits: int, c: float) -> float:
    """Paper eq. 3, ``Q + c·P·sqrt(log N(S))/(1+N(S_c))``, with log(1+N) so a first visit still ranks by P."""
    return q + c * prior * math.sqrt(math.log(1 + parent_visits)) / (1 + child_visits)


def var_p_ucb(
    q: float, prior: float, parent_visits: int, child_visits: int, c: float = 4.0, base: float = 10.0
) -> float:
    """The authors' (PG-TD's) variable PUCB: the constant grows with the parent's visits."""
    beta = math.log((parent_visits + base + 1) / base) + c
    return q + beta * prior * math.sqrt(math.log(1 + parent_visits)) / (1 + child_visits)


def child_score(tree: Tree, parent: Node, child: Node, *, selection: str, c: float, q_mode: str) -> float:
    q = q_value(child.returns, q_mode)
    if selection == "var_p_ucb":
        return var_p_ucb(q, child.prior, parent.visits, child.visits)  # authors' constants c=4, base=10
    return pucb(q, child.prior, parent.visits, child.visits, c)


def select_child(tree: Tree, parent: Node, *, selection: str, c: float, q_mode: str) -> Node | None:
    """The selectable child with the highest score; ties go to the lowest node id (never to a policy)."""
    best: Node | None = None
    best_score = -math.inf
    for cid in sorted(parent.children):  # a refined replacement keeps its slot but not its id: sort
        child = tree.nodes[cid]
        if not child.selectable:
            continue
        score = child_score(tree, parent, child, selection=selection, c=c, q_mode=q_mode)
        if score > best_score + 1e-12:
            best, best_score = child, score
    return best


def leaf_value(node: Node, gamma: float) -> float:
    """Q of a freshly simulated node: r_T (its PR) when terminal, else γ·PR(S); an ill node gives 0."""
    if node.status == "ill" or node.pr is None:
        return 0.0
    if node.status == "terminal":
        return node.pr
    return gamma * node.pr


def backup(tree: Tree, node_id: int, value: float, gamma: float) -> list[tuple[int, float]]:
    """Add ``value`` at the node and γ^k·value k levels above it; every node on the path gains one visit.

    Returns the (node id, return) pairs in leaf → root order so tests can check the arithmetic.
    """
    out: list[tuple[int, float]] = []
    cur: int | None = node_id
    ret = value
    while cur is not None:
        node = tree.nodes[cur]
        node.visits += 1
        node.returns.append(ret)
        out.append((cur, ret))
        ret = gamma * ret
        cur = node.parent
    return out


def is_ill(child: Node, parent: Node) -> bool:
    """Paper's prune test: the child's PR is below its parent's."""
    return child.pr is not None and parent.pr is not None and child.pr < parent.pr


def best_candidate(nodes: Iterable[Node]) -> tuple[Node, Solution] | None:
    """Final answer: the solution with the best public pass rate over every simulated node.

    Tie-break, documented and deterministic: the earliest node (lowest id: shallower, found first), then
    policy order, then sample index. Ill and replaced nodes' solutions are candidates too: their public
    pass rate is legitimate evidence.
    """
    best: tuple[Node, Solution] | None = None
    for node in sorted(nodes, key=lambda n: n.id):
        for sol in node.solutions:
            if best is None or sol.pass_rate > best[1].pass_rate:
                best = (node, sol)
    return best
