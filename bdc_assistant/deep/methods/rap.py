"""RAP, "Reasoning via Planning" (Hao et al., EMNLP 2023), as the RethinkMCTS authors ported it to code:
MCTS over thoughts where the LLM is both the world model and the reward, with no test execution.

Why it is here: Table 1's "MCTS with a self-evaluated reward" row, the control for what execution feedback
adds. The LLM's proposals are the actions and the plan they extend is the next state; simulating a state
writes one program from it (``solve``) and asks the LLM how likely plan and program are to be correct
(``evaluate_state`` with the code; 0.5 when malformed); that self-evaluation is the reward backed up
(r_T at ``max_depth``, else γ·r). The evaluator is never called during the search: every program (the
direct solve included) is scored on the public tests in :meth:`finalise`, after the search, only to pick
the final program. So RAP has no early stop: it runs until ``rollouts``, convergence or the budget.
(The port picks the final program by the LLM reward; the bench picks every method's by public tests.)
"""

from __future__ import annotations

from dataclasses import dataclass

from ..tree import Node, Solution, backup
from .base import TreeMethod


@dataclass
class RAP(TreeMethod):
    label = "rap"

    def solved(self) -> bool:
        return False  # no test runs during the search, so nothing is known to pass

    def start(self) -> None:
        root = self.add(None, ())
        self.record(root, self.solve(root), evaluate=False)
        backup(self.tree, root.id, 0.0, self.config.gamma)  # a visit, so PUCB's log(1+N) ranks by prior

    def expand(self, node: Node) -> None:
        self.add_proposals(node)

    def simulate(self, node: Node) -> None:
        code = self.solve(node)
        reward = self.team.evaluate_state(self.agent, self.state(node), code)
        self.record(node, code, evaluate=False, depth_cap=True)
        self.values[node.id] = reward
        self.back(node, reward)

    def finalise(self) -> None:
        """Score every program on the public tests, now that the search is over."""
        for node in sorted(self.tree.nodes.values(), key=lambda n: n.id):
            if not node.solutions:
                continue
            sol = node.solutions[0]
            result = self.evaluate(sol.code)
            node.solutions = [Solution(sol.policy, 0, sol.code, result.pass_rate, result.statuses)]
            node.pr = result.pass_rate
