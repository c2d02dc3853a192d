"""MC-Tree-of-Agents search (paper §4.1) over an injected team of policies and an injected evaluator.

Nothing here talks to the network, a database or a sandbox: ``Team`` turns states into thoughts and code
(the runner's implementation calls LLMs; tests use scripted fakes) and ``Evaluator`` scores code on the
*public* tests it was built with. The search never receives private tests: its problem type,
:class:`PublicProblem`, has no field for them.

One rollout:
  1. Select from the root by PUCB (eq. 3) or ``var_p_ucb`` among selectable children (not ill, not
     replaced, not exhausted); ties go to the lowest node id.
  2. At the leaf: an unsimulated node is simulated; a terminal node backs up r_T again; otherwise the node
     is expanded (every policy proposes ``width`` thoughts with priors) and its best-scored new child is
     simulated.
  3. Simulate: every policy writes ``samples`` solutions from the state; PR(S) = mean public pass rate.
  4. Prune: a child with PR below its parent's is ill. Refine (if allowed by the local and global limits,
     and only when the calls left pay for the refine and the replacement's simulation):
     a different policy summarises the failure (code, failing tests, a block-level execution trace), the
     author regenerates the thought, the new node replaces the ill one and is re-simulated. A node still
     ill is pruned: out of selection, kept in the tree, and a reward of 0 is backed up at once.
  5. Backup Q(S) = r_T if terminal else γ·PR(S), discounted by γ per level towards the root.

The root's PR comes from a direct solve (the empty thought list), so depth-1 children can be pruned too.
``on_checkpoint`` is called with the tree after the root solve and after every completed rollout.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ..types import TestCase
from . import events as ev
from .tree import (
    Node,
    Proposal,
    Solution,
    Tree,
    backup,
    best_candidate,
    is_ill,
    leaf_value,
    normalize_priors,
    select_child,
)


class StopSearch(Exception):
    """Raised by a team or a stop check to end the search; ``reason`` becomes ``stopped_by``."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class PublicProblem:
    """What the search may see: the statement and the public tests. No private tests, by construction."""

    id: str
    statement: str
    public_tests: tuple[TestCase, ...]
    entry_point: str | None = None
    kind: str = "stdio"
    starter_code: str = ""
    checker: str | None = None  # a registered output checker, for problems with many valid answers


@dataclass(frozen=True)
class State:
    """A node's state as the policies see it."""

    problem: PublicProblem
    thoughts: tuple[str, ...]
    authors: tuple[str, ...]
    # lessons from earlier failed programs (the Table-1 baselines' verbal memory, :mod:`.methods`);
    # MC-ToA never sets them, so its prompts are unchanged
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Failure:
    """One failing public test, for refine prompts."""

    index: int
    input: str
    expected: str
    got: str
    status: str
    detail: str = ""


@dataclass(frozen=True)
class Evaluation:
    pass_rate: float
    statuses: tuple[str, ...]
    failures: tuple[Failure, ...] = ()


class Team(Protocol):
    """The policies. Batch methods return one entry per policy, in ``names`` order."""

    names: tuple[str, ...]

    def propose(self, state: State, width: int) -> list[list[Proposal]]: ...

    def solve(self, state: State, samples: int) -> list[list[str]]: ...

    def summarise(
        self, critic: str, state: State, code: str, failures: Sequence[Failure], trace: str
    ) -> str: ...

    def regenerate(self, author: str, parent: State, ill_thought: str, summary: str) -> str: ...

    def affords(self, phases: Sequence[str]) -> bool:
        """Whether the budgets still allow one call of each of these phases (a call cap counts them; a token
        or dollar cap prices them)."""
        ...


class Evaluator(Protocol):
    def evaluate(self, code: str) -> Evaluation: ...

    def trace(self, code: str, failure: Failure) -> str: ...


@dataclass(frozen=True)
class SearchConfig:
    rollouts: int = 8
    width: int = 2
    samples: int = 1
    max_depth: int = 4
    gamma: float = 0.9
    c_puct: float = 1.0
    selection: str = "pucb"  # "pucb" | "var_p_ucb"
    q_mode: str = "mean"  # "mean" | "max"
    prune: bool = True
    refine: bool = True
    refine_local_limit: int = 1
    refine_global_limit: int = 4
    early_stop: bool = True
    seed: int = 0
    # Stop ("converged") after this many rollouts in a row that changed nothing but visit counts: only
    # terminal leaves are left to revisit, which spends no calls, so a large rollout cap would otherwise spin.
    idle_rollouts: int = 16
    # which search runs (:mod:`.methods`): "mc-toa" (this module) or a Table-1 baseline; the fields
    # below are only read by the baselines
    method: str = "mc-toa"
    beam: int = 2  # ToT: states kept per level
    llm_value_weight: float = 0.5  # LATS: value = w·LLM value + (1-w)·public pass rate


@dataclass
class SearchOutcome:
    tree: Tree
    stopped_by: str
    detail: str = ""
    best_node: int | None = None
    best_code: str = ""
    public_pass_rate: float = 0.0

    @property
    def nodes(self) -> int:
        return len(self.tree.nodes)


@dataclass
class Search:
    problem: PublicProblem
    team: Team
    evaluator: Evaluator
    config: SearchConfig = field(default_factory=SearchConfig)
    emit: Callable[[ev.DeepEvent], None] = lambda e: None
    on_checkpoint: Callable[[Tree], None] = lambda t: None
    check_stop: Callable[[], str | None] = lambda: None
    tree: Tree = field(default_factory=Tree)
    _eval_cache: dict[str, Evaluation] = field(default_factory=dict)

    # ---- driver -------------------------------------------------------------------------------------

    def run(self) -> SearchOutcome:
        """Search until a budget, the rollout limit, early stop or exhaustion; resumes a loaded tree."""
        stopped_by, detail = "rollouts", ""
        try:
            if not self.tree.nodes:
                root = self.tree.add(None, (), (), 1.0)
                self._added(root)
            root = self.tree.root
            if not root.simulated:
                self._stop_check()
                self._simulate(root)
                backup(self.tree, root.id, leaf_value(root, self.config.gamma), self.config.gamma)
                self.on_checkpoint(self.tree)
            while True:
                if self.config.early_stop and self._best_rate() >= 1.0:
                    stopped_by = "solved"
                    break
                if self.tree.rollout >= self.config.rollouts:
                    stopped_by = "rollouts"
                    break
                if self.config.idle_rollouts and self.tree.idle >= self.config.idle_rollouts:
                    stopped_by = "converged"
                    break
                self._stop_check()
                before = self._progress()
                self._rollout()
                self.tree.idle = self.tree.idle + 1 if self._progress() == before else 0
                self.tree.rollout += 1
                self._rollout_done()  # before the checkpoint, so the event is saved with the rollout
                self.on_checkpoint(self.tree)
        except StopSearch as stop:
            stopped_by, detail = stop.reason, stop.detail
        return self.outcome(stopped_by, detail)

    def _progress(self) -> tuple[int, ...]:
        """What a rollout that did real work changes (visit counts and values alone do not count)."""
        t = self.tree
        simulated = sum(n.simulated for n in t.nodes.values())
        closed = sum(n.status in ("ill", "replaced", "exhausted") for n in t.nodes.values())
        return (t.next_id, simulated, closed, t.pruned_total, t.refines_total)

    def _stop_check(self) -> None:
        reason = self.check_stop()
        if reason:
            raise StopSearch(reason)

    def outcome(self, stopped_by: str, detail: str = "") -> SearchOutcome:
        """The best solution of the tree as it stands, stopped for ``stopped_by``."""
        out = SearchOutcome(tree=self.tree, stopped_by=stopped_by, detail=detail)
        best = best_candidate(self.tree.nodes.values())
        if best is not None:
            out.best_node, out.best_code, out.public_pass_rate = best[0].id, best[1].code, best[1].pass_rate
        return out

    def _best_rate(self) -> float:
        best = best_candidate(self.tree.nodes.values())
        return best[1].pass_rate if best else 0.0

    def _rollout_done(self) -> None:
        self.emit(
            ev.RolloutDone(
                rollout=self.tree.rollout,
                best_public_pass_rate=self._best_rate(),
                nodes=len(self.tree.nodes),
                calls=0,
                spend_usd=0.0,
            )
        )

    # ---- one rollout --------------------------------------------------------------------------------

    def _rollout(self) -> None:
        cfg = self.config
        node = self.tree.root
        while node.simulated and node.status != "terminal" and node.expanded:
            child = select_child(self.tree, node, selection=cfg.selection, c=cfg.c_puct, q_mode=cfg.q_mode)
            if child is None:
                self._exhaust(node)
                return
            node = child
        if not node.simulated:
            self._simulate_and_judge(node)
        elif node.status == "terminal":
            backup(self.tree, node.id, leaf_value(node, cfg.gamma), cfg.gamma)
        else:
            self._expand(node)
            child = select_child(self.tree, node, selection=cfg.selection, c=cfg.c_puct, q_mode=cfg.q_mode)
            if child is None:
                self._exhaust(node)
                return
            self._simulate_and_judge(child)

    def _exhaust(self, node: Node) -> None:
        if node.parent is None:
            raise StopSearch("exhausted", "every branch of the tree was pruned")
        node.status = "exhausted"
        node.reason = "no selectable children"
        backup(self.tree, node.id, 0.0, self.config.gamma)

    def _state(self, node: Node) -> State:
        return State(self.problem, node.thoughts, node.authors)

    def _added(self, node: Node) -> None:
        self.emit(
            ev.NodeAdded(
                node_id=node.id,
                parent_id=node.parent,
                thought=node.thoughts[-1] if node.thoughts else "",
                author=node.authors[-1] if node.authors else None,
                prior=node.prior,
                rollout=self.tree.rollout,
            )
        )

    def _expand(self, node: Node) -> None:
        proposals = self.team.propose(self._state(node), self.config.width)
        priors = normalize_priors(proposals)
        new: list[Node] = []
        for name, props, prs in zip(self.team.names, proposals, priors, strict=True):
            for prop, prior in zip(props, prs, strict=True):
                if not prop.thought.strip():
                    continue
                child = self.tree.add(node.id, (*node.thoughts, prop.thought), (*node.authors, name), prior)
                node.children.append(child.id)
                new.append(child)
        node.expanded = True
        for child in new:
            self._added(child)

    def _evaluate(self, code: str) -> Evaluation:
        key = hashlib.sha256(code.encode()).hexdigest()
        if key not in self._eval_cache:
            self._eval_cache[key] = self.evaluator.evaluate(code)
        return self._eval_cache[key]

    def _simulate(self, node: Node) -> None:
        codes = self.team.solve(self._state(node), self.config.samples)
        solutions: list[Solution] = []
        for name, samples in zip(self.team.names, codes, strict=True):
            for i, code in enumerate(samples):
                result = self._evaluate(code)
                solutions.append(Solution(name, i, code, result.pass_rate, result.statuses))
        node.solutions = solutions
        node.pr = sum(s.pass_rate for s in solutions) / len(solutions) if solutions else 0.0
        node.simulated = True
        best = node.best_solution()
        if node.depth >= self.config.max_depth:
            node.status, node.reason = "terminal", "max depth"
        elif self.config.early_stop and best is not None and best.pass_rate >= 1.0:
            node.status, node.reason = "terminal", "a solution passes every public test"
        self.emit(
            ev.NodeSimulated(
                node_id=node.id,
                pass_rate=node.pr,
                best_pass_rate=best.pass_rate if best else 0.0,
                n_solutions=len(solutions),
                terminal=node.status == "terminal",
                rollout=self.tree.rollout,
            )
        )

    def _simulate_and_judge(self, node: Node) -> None:
        cfg = self.config
        self._simulate(node)
        assert node.parent is not None
        parent = self.tree.nodes[node.parent]
        judging = cfg.prune or cfg.refine
        while judging and is_ill(node, parent) and self._can_refine(node):
            node = self._refine(node, parent)
        if judging and is_ill(node, parent) and cfg.prune:
            node.status = "ill"
            node.reason = f"PR {node.pr:.4f} < parent PR {parent.pr:.4f}"
            self.tree.pruned_total += 1
            self.emit(
                ev.NodePruned(
                    node_id=node.id,
                    pass_rate=node.pr or 0.0,
                    parent_pass_rate=parent.pr or 0.0,
                    rollout=self.tree.rollout,
                )
            )
            backup(self.tree, node.id, 0.0, cfg.gamma)
            return
        backup(self.tree, node.id, leaf_value(node, cfg.gamma), cfg.gamma)

    # ---- refine -------------------------------------------------------------------------------------

    def _can_refine(self, node: Node) -> bool:
        cfg = self.config
        return (
            cfg.refine
            and node.refines < cfg.refine_local_limit
            and self.tree.refines_total < cfg.refine_global_limit
            and bool(node.solutions)
            and bool(node.authors)
            and self._affords_refine()
        )

    def _affords_refine(self) -> bool:
        """A refine costs two calls (the critic's summary, the author's new thought) and its replacement's
        simulation one solve batch more. One the budget cannot simulate would leave an unsimulated node in
        the ill one's place, neither judged nor pruned, and its two calls bought nothing (measured: all 12
        refines of the 8-call codecontests-val run), so the ill node is pruned instead."""
        solves = len(self.team.names) * self.config.samples
        return self.team.affords(("summarise", "regenerate") + ("solve",) * solves)

    def pick_critic(self, author: str) -> str:
        """A policy other than the author, chosen by an RNG seeded from (seed, problem, refine count)."""
        others = [n for n in self.team.names if n != author] or [author]
        seed = f"{self.config.seed}:{self.problem.id}:{self.tree.refines_total}"
        rng = random.Random(hashlib.sha256(seed.encode()).hexdigest())
        return others[rng.randrange(len(others))]

    def _refine(self, ill: Node, parent: Node) -> Node:
        author = ill.authors[-1]
        critic = self.pick_critic(author)
        worst = ill.worst_solution()
        assert worst is not None
        result = self._evaluate(worst.code)
        trace = self.evaluator.trace(worst.code, result.failures[0]) if result.failures else ""
        summary = self.team.summarise(critic, self._state(ill), worst.code, result.failures[:3], trace)
        thought = self.team.regenerate(author, self._state(parent), ill.thoughts[-1], summary)
        self.tree.refines_total += 1
        new = self.tree.add(
            parent.id,
            (*parent.thoughts, thought),
            (*parent.authors, author),
            ill.prior,
            refines=ill.refines + 1,
            refined_from=ill.id,
        )
        ill.status, ill.replaced_by = "replaced", new.id
        ill.reason = f"PR {ill.pr:.4f} < parent PR {parent.pr:.4f}; refined by {critic}"
        parent.children[parent.children.index(ill.id)] = new.id
        self._added(new)
        self.emit(
            ev.NodeRefined(
                ill_node_id=ill.id,
                new_node_id=new.id,
                critic=critic,
                author=author,
                summary=summary,
                rollout=self.tree.rollout,
            )
        )
        self._simulate(new)
        if is_ill(new, parent):
            self.tree.refines_failed += 1
        else:
            self.tree.refines_effective += 1
        return new
