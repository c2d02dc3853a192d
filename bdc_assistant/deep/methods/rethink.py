"""RethinkMCTS (Li et al., EMNLP 2025; arXiv 2409.09584): single-policy MCTS over thoughts with execution
feedback, where a failing node's thought is *rethought* in place from block-level feedback.

Why it is here: Table 1's strongest baseline and MC-ToA's direct ancestor; the difference it isolates is
one policy and "rethink on any failure" against several policies and "prune/refine on PR drop". Simulating
a state writes one program and runs the public tests; value = PR (the port's dual evaluation, 0.8·PR +
0.2·LLM only when PR = 1, is left out: with early stop a passing program ends the search anyway). When the
program fails and the node has not been rethought yet (the port's ``second_chance_flag``: one rethink per
node, no global limit), the first failing test is traced block by block (:mod:`..trace`), the LLM gives
per-block verdicts (``debug_blocks``), and the feedback (failing tests, trace, verdicts) goes to
``regenerate``: the new thought replaces the node in its parent's slot (the old node is kept as
``replaced``) and is simulated. A node that still fails keeps its feedback (failing tests and trace) and
its children are proposed with it (``State.notes``), as the port's ``__expand__(verbal_feedback)``. The root
(direct solve) is never rethought; its expansion sees its failures.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import events as ev
from ..search import Evaluation
from ..tree import Node
from .base import TreeMethod, render_failures, render_verdicts


@dataclass
class RethinkMCTS(TreeMethod):
    label = "rethinkmcts"
    feedback: dict[int, str] = field(default_factory=dict)

    def start(self) -> None:
        root = self.add(None, ())
        result = self.record(root, self.solve(root), depth_cap=True)
        self.keep_feedback(root, result, trace="")
        self.values[root.id] = result.pass_rate
        self.back(root, result.pass_rate)

    def expand(self, node: Node) -> None:
        note = self.feedback.get(node.id)
        self.add_proposals(node, (note,) if note else ())

    def simulate(self, node: Node) -> None:
        code = self.solve(node)
        result = self.record(node, code, depth_cap=True)
        if result.pass_rate < 1.0 and result.failures and node.refines == 0 and node.parent is not None:
            node, code, result = self.rethink(node, code, result)
        if result.pass_rate < 1.0 and result.failures:
            self.keep_feedback(node, result, self.evaluator.trace(code, result.failures[0]))
        self.values[node.id] = result.pass_rate
        self.back(node, result.pass_rate)

    def keep_feedback(self, node: Node, result: Evaluation, trace: str) -> None:
        if result.failures:
            text = "The program written from this plan fails:\n" + render_failures(result.failures[:3])
            self.feedback[node.id] = text + (f"\nTrace of the first failing test:\n{trace}" if trace else "")

    def rethink(self, node: Node, code: str, result: Evaluation) -> tuple[Node, str, Evaluation]:
        assert node.parent is not None
        parent = self.tree.nodes[node.parent]
        failure = result.failures[0]
        trace = self.evaluator.trace(code, failure)
        verdicts = self.team.debug_blocks(self.agent, self.state(node), code, failure, trace)
        feedback = (
            f"Failing tests:\n{render_failures(result.failures[:3])}\n"
            f"Trace of the first failing test:\n{trace or '(not available)'}\n"
            f"Block verdicts:\n{render_verdicts(verdicts) or '(none)'}"
        )
        thought = self.team.regenerate(self.agent, self.state(parent), node.thoughts[-1], feedback)
        self.tree.refines_total += 1
        new = self.add(parent, (*parent.thoughts, thought), node.prior, replacing=node)
        node.status, node.replaced_by = "replaced", new.id
        node.reason = f"PR {node.pr:.4f}: rethought"
        self.emit(
            ev.NodeRefined(
                ill_node_id=node.id,
                new_node_id=new.id,
                critic=self.agent,
                author=self.agent,
                summary=feedback[:2000],
                rollout=self.tree.rollout,
            )
        )
        new_code = self.solve(new)
        new_result = self.record(new, new_code, depth_cap=True)
        if new_result.pass_rate > result.pass_rate:
            self.tree.refines_effective += 1
        else:
            self.tree.refines_failed += 1
        return new, new_code, new_result
