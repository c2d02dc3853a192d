"""What the Table-1 baselines share: the extra team calls they need, and a small search skeleton.

Why a skeleton: every baseline must be comparable with MC-ToA on the same terms, so they all build the same
:class:`~..tree.Tree` (a node per state or attempt, each simulated node holding the programs written from
it), evaluate programs through the same injected ``Evaluator`` (public tests only, cached per program),
spend calls only through the injected team (the runner's gateway counts and caps them; the scripted fake
raises ``StopSearch("max_calls")`` the same way), and end with a :class:`~..search.SearchOutcome` whose best
program is chosen by :func:`~..tree.best_candidate`. Nothing here does I/O.

Every baseline starts with the same first batch: one direct solve from the empty plan (the zero-shot
program), so a method never ends without a candidate, and the bench's resample rule ("the calls left pay
for a new attempt's first batch") means one call for all of them.

Baselines are single-policy: the team must have exactly one agent (the bench labels them ``reflexion[A]``).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ...errors import ConfigError
from .. import events as ev
from ..search import (
    Evaluation,
    Evaluator,
    Failure,
    PublicProblem,
    SearchConfig,
    SearchOutcome,
    State,
    StopSearch,
    Team,
)
from ..tree import Node, Solution, Tree, backup, best_candidate, select_child


@dataclass(frozen=True)
class BlockVerdict:
    """The LLM's verdict on one traced basic block of a failing run (LDB's debugging step)."""

    block: int
    correct: bool
    explanation: str = ""


class MethodTeam(Team, Protocol):
    """The policies plus the calls the baselines add. Each call is one LLM call of ``agent``; a malformed
    answer gives the documented fallback (never an exception)."""

    def reflect(self, agent: str, state: State, code: str, failures: Sequence[Failure]) -> str:
        """Verbal self-reflection on a program that fails public tests (Reflexion, LATS)."""
        ...

    def repair(
        self, agent: str, state: State, code: str, failures: Sequence[Failure], notes: Sequence[str]
    ) -> str:
        """A new complete program from the previous one, its failures and ``notes`` (a reflection memory,
        or a trace and block verdicts); the previous program when the answer has no code."""
        ...

    def evaluate_state(self, agent: str, state: State, code: str = "") -> float:
        """The LLM's own estimate in [0, 1] that the plan (and ``code``, when given) is correct; 0.5 when
        the answer has no usable number."""
        ...

    def debug_blocks(
        self, agent: str, state: State, code: str, failure: Failure, trace: str
    ) -> list[BlockVerdict]:
        """A correct/wrong verdict per traced block of ``failure``'s run; [] when the answer is malformed."""
        ...


def render_failures(failures: Sequence[Failure]) -> str:
    return "\n".join(
        f"- input: {f.input[:300]!r}\n  expected: {f.expected[:300]!r}\n  got: {f.got[:300]!r} ({f.status})"
        + (f"\n  error: {f.detail[-300:]}" if f.detail else "")
        for f in failures
    )


def render_verdicts(verdicts: Sequence[BlockVerdict]) -> str:
    return "\n".join(
        f"[block {v.block}] {'correct' if v.correct else 'WRONG'}: {v.explanation}".rstrip(": ")
        for v in verdicts
    )


@dataclass
class MethodSearch:
    """Fields and helpers of every baseline; subclasses implement :meth:`search` (returns the stop reason
    when the method ends by itself; budgets end it with ``StopSearch``)."""

    problem: PublicProblem
    team: MethodTeam
    evaluator: Evaluator
    config: SearchConfig = field(default_factory=SearchConfig)
    emit: Callable[[ev.DeepEvent], None] = lambda e: None
    on_checkpoint: Callable[[Tree], None] = lambda t: None
    check_stop: Callable[[], str | None] = lambda: None
    tree: Tree = field(default_factory=Tree)
    _eval_cache: dict[str, Evaluation] = field(default_factory=dict)
    values: dict[int, float] = field(default_factory=dict)  # per-node value the method ranked by

    label = "method"

    # ---- driver -------------------------------------------------------------------------------------

    def run(self) -> SearchOutcome:
        if len(self.team.names) != 1:
            raise ConfigError(f"{self.label} is a single-agent method; give it exactly one agent.")
        try:
            stopped_by, detail = self.search(), ""
        except StopSearch as stop:
            stopped_by, detail = stop.reason, stop.detail
        self.finalise()
        return self.outcome(stopped_by, detail)

    def search(self) -> str:
        raise NotImplementedError

    def finalise(self) -> None:
        """Called once the search ends, however it ends (RAP scores its programs here)."""

    def outcome(self, stopped_by: str, detail: str = "") -> SearchOutcome:
        out = SearchOutcome(tree=self.tree, stopped_by=stopped_by, detail=detail)
        best = best_candidate(self.tree.nodes.values())
        if best is not None:
            out.best_node, out.best_code, out.public_pass_rate = best[0].id, best[1].code, best[1].pass_rate
        return out

    # ---- helpers ------------------------------------------------------------------------------------

    @property
    def agent(self) -> str:
        return self.team.names[0]

    def solved(self) -> bool:
        best = best_candidate(self.tree.nodes.values())
        return self.config.early_stop and best is not None and best[1].pass_rate >= 1.0

    def stop_check(self) -> None:
        reason = self.check_stop()
        if reason:
            raise StopSearch(reason)

    def state(self, node: Node, notes: Sequence[str] = ()) -> State:
        return State(self.problem, node.thoughts, node.authors, tuple(notes))

    def add(
        self,
        parent: Node | None,
        thoughts: Sequence[str],
        prior: float = 1.0,
        *,
        replacing: Node | None = None,
    ) -> Node:
        """A new node under ``parent``; ``replacing`` puts it in that node's slot (a rethought node)."""
        node = self.tree.add(
            parent.id if parent else None,
            thoughts,
            (self.agent,) * len(thoughts),
            prior,
            refines=replacing.refines + 1 if replacing else 0,
            refined_from=replacing.id if replacing else None,
        )
        if parent is not None:
            if replacing is not None:
                parent.children[parent.children.index(replacing.id)] = node.id
            else:
                parent.children.append(node.id)
        self.emit(
            ev.NodeAdded(
                node_id=node.id,
                parent_id=node.parent,
                thought=node.thoughts[-1] if node.thoughts else "",
                author=self.agent if node.thoughts else None,
                prior=prior,
                rollout=self.tree.rollout,
            )
        )
        return node

    def solve(self, node: Node, notes: Sequence[str] = ()) -> str:
        return self.team.solve(self.state(node, notes), 1)[0][0]

    def evaluate(self, code: str) -> Evaluation:
        key = hashlib.sha256(code.encode()).hexdigest()
        if key not in self._eval_cache:
            self._eval_cache[key] = self.evaluator.evaluate(code)
        return self._eval_cache[key]

    def record(self, node: Node, code: str, *, evaluate: bool = True, depth_cap: bool = False) -> Evaluation:
        """``code`` becomes the node's one solution, scored on the public tests unless ``evaluate`` is off
        (RAP: scored in :meth:`finalise`). Terminal when it passes every public test (early stop) or, with
        ``depth_cap``, at ``max_depth``."""
        result = self.evaluate(code) if evaluate else Evaluation(0.0, ())
        node.solutions = [Solution(self.agent, 0, code, result.pass_rate, result.statuses)]
        node.pr = result.pass_rate
        node.simulated = True
        if evaluate and self.config.early_stop and result.pass_rate >= 1.0:
            node.status, node.reason = "terminal", "a solution passes every public test"
        elif depth_cap and node.depth >= self.config.max_depth:
            node.status, node.reason = "terminal", "max depth"
        self.emit(
            ev.NodeSimulated(
                node_id=node.id,
                pass_rate=result.pass_rate,
                best_pass_rate=result.pass_rate,
                n_solutions=1,
                terminal=node.status == "terminal",
                rollout=self.tree.rollout,
            )
        )
        return result

    def pick_failure(self, failures: Sequence[Failure]) -> Failure | None:
        """A failing test chosen by an RNG seeded from (seed, problem, rollout): LDB debugs a random one."""
        if not failures:
            return None
        seed = f"{self.config.seed}:{self.problem.id}:{self.tree.rollout}"
        rng = random.Random(hashlib.sha256(seed.encode()).hexdigest())
        return failures[rng.randrange(len(failures))]

    def rollout_done(self) -> None:
        self.tree.rollout += 1
        best = best_candidate(self.tree.nodes.values())
        self.emit(
            ev.RolloutDone(
                rollout=self.tree.rollout,
                best_public_pass_rate=best[1].pass_rate if best else 0.0,
                nodes=len(self.tree.nodes),
                calls=0,
                spend_usd=0.0,
            )
        )
        self.on_checkpoint(self.tree)


class TreeMethod(MethodSearch):
    """MCTS over thoughts for RAP, LATS and RethinkMCTS: select by PUCB (or ``var_p_ucb``) among selectable
    children, expand a leaf with ``width`` proposals, simulate its best child, back up the method's value.
    Subclasses implement :meth:`start` (the root), :meth:`expand` and :meth:`simulate`."""

    def search(self) -> str:
        cfg, t = self.config, self.tree
        self.start()
        self.on_checkpoint(t)
        while True:
            if self.solved():
                return "solved"
            if t.rollout >= cfg.rollouts:
                return "rollouts"
            if cfg.idle_rollouts and t.idle >= cfg.idle_rollouts:
                return "converged"  # only finished leaves are left to revisit
            self.stop_check()
            before = self.progress()
            self.rollout()
            t.idle = t.idle + 1 if self.progress() == before else 0
            self.rollout_done()

    def progress(self) -> tuple[int, ...]:
        t = self.tree
        simulated = sum(n.simulated for n in t.nodes.values())
        closed = sum(n.status in ("ill", "replaced", "exhausted") for n in t.nodes.values())
        return (t.next_id, simulated, closed, t.refines_total)

    def select(self, node: Node) -> Node | None:
        cfg = self.config
        return select_child(self.tree, node, selection=cfg.selection, c=cfg.c_puct, q_mode=cfg.q_mode)

    def rollout(self) -> None:
        node = self.tree.root
        while node.simulated and node.status != "terminal" and node.expanded:
            child = self.select(node)
            if child is None:
                self.exhaust(node)
                return
            node = child
        if node.status == "terminal":
            self.back(node, self.values.get(node.id, 0.0))
            return
        if not node.simulated:
            self.simulate(node)
            return
        self.expand(node)
        node.expanded = True
        child = self.select(node)
        if child is None:
            self.exhaust(node)
            return
        self.simulate(child)

    def back(self, node: Node, value: float) -> None:
        """Back up ``value`` (r_T at a terminal node, else γ·value), discounted by γ per level."""
        leaf = value if node.status == "terminal" else self.config.gamma * value
        backup(self.tree, node.id, leaf, self.config.gamma)

    def exhaust(self, node: Node) -> None:
        if node.parent is None:
            raise StopSearch("exhausted", "every branch of the tree was closed")
        node.status, node.reason = "exhausted", "no selectable children"
        backup(self.tree, node.id, 0.0, self.config.gamma)

    def add_proposals(self, node: Node, notes: Sequence[str] = ()) -> None:
        """One propose call; every non-empty thought becomes a child, priors normalised as in MC-ToA."""
        from ..tree import normalize_priors

        proposals = self.team.propose(self.state(node, notes), self.config.width)[0]
        (priors,) = normalize_priors([proposals])
        for prop, prior in zip(proposals, priors, strict=True):
            if prop.thought.strip():
                self.add(node, (*node.thoughts, prop.thought), prior)

    def start(self) -> None:
        raise NotImplementedError

    def expand(self, node: Node) -> None:
        raise NotImplementedError

    def simulate(self, node: Node) -> None:
        raise NotImplementedError
