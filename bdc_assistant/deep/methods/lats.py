"""LATS, "Language Agent Tree Search" (Zhou et al., ICML 2024), for code: MCTS over thoughts whose value
mixes the public-test result with an LLM value, and whose failed rollouts leave self-reflections that later
expansions see.

Why it is here: Table 1's "MCTS + execution + verbal memory" row. Simulating a state writes one program
(``solve``, with the memory) and runs the public tests; unless it passes them all, the LLM scores plan and
program (``evaluate_state``) and the value is ``w·llm + (1-w)·PR`` (``llm_value_weight``, default 0.5; LATS
mixes an LM score with an environment signal), and the LLM reflects on the failures (``reflect``): the
reflection joins the memory, and the last three reflections go with every later ``propose`` and ``solve``
(as ``State.notes``). A program that passes every public test is worth 1 and ends the search (early stop).
The direct solve at the root is simulated the same way. Values back up as in MC-ToA (r_T / γ·v).

The original reward on HumanEval used LLM-generated internal tests (and leaked hidden tests, LATS issues
#10/#28); here it is the problem's public tests, as for every method of the table.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..tree import Node
from .base import TreeMethod

MEMORY = 3  # reflections shown to later expansions


@dataclass
class LATS(TreeMethod):
    label = "lats"
    memory: list[str] = field(default_factory=list)

    def notes(self) -> tuple[str, ...]:
        return tuple(self.memory[-MEMORY:])

    def start(self) -> None:
        self.simulate(self.add(None, ()))

    def expand(self, node: Node) -> None:
        self.add_proposals(node, self.notes())

    def simulate(self, node: Node) -> None:
        code = self.solve(node, self.notes())
        result = self.record(node, code, depth_cap=True)
        value = 1.0
        if result.pass_rate < 1.0:
            w = self.config.llm_value_weight
            llm = self.team.evaluate_state(self.agent, self.state(node), code)
            value = w * llm + (1 - w) * result.pass_rate
            self.memory.append(self.team.reflect(self.agent, self.state(node), code, result.failures[:3]))
        self.values[node.id] = value
        self.back(node, value)
