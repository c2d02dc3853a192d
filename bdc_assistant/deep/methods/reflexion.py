"""Reflexion (Shinn et al., NeurIPS 2023), as the RethinkMCTS authors ran it for code: solve, run the
public tests, write a verbal self-reflection on the failures, retry with the reflection memory.

Why it is here: it is Table 1's "learn from public-test feedback in words, no search" row. One iteration
is two calls (``reflect`` then ``repair``); the repair prompt gets the previous program, its failing tests
and every reflection so far (most recent last), so the memory grows as in the paper. Each attempt is a
node whose thoughts are the reflection memory, chained under the direct solve. The loop ends when a program
passes every public test (``solved``), after ``rollouts`` iterations, or when the budget refuses a call.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..search import State
from .base import MethodSearch


@dataclass
class Reflexion(MethodSearch):
    label = "reflexion"

    def search(self) -> str:
        node = self.add(None, ())
        code = self.solve(node)
        result = self.record(node, code)
        self.on_checkpoint(self.tree)
        memory: list[str] = []
        bare = State(self.problem, (), ())
        while True:
            if self.solved():
                return "solved"
            if self.tree.rollout >= self.config.rollouts:
                return "rollouts"
            self.stop_check()
            failures = result.failures[:3]
            memory.append(self.team.reflect(self.agent, bare, code, failures))
            code = self.team.repair(self.agent, bare, code, failures, tuple(memory))
            node = self.add(node, tuple(memory))
            result = self.record(node, code)
            self.rollout_done()
