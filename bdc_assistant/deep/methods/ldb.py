"""LDB, "Debug like a Human" (Zhong et al., ACL 2024): generate, then debug the program against a failing
public test block by block and fix it; iterate.

Why it is here: Table 1's "execution-trace debugging, no search" row. One iteration: a failing public test
is picked at random (seeded by problem and iteration, as LDB picks a random failed test), the program is
traced on it in the sandbox (:mod:`..trace` through the evaluator: basic blocks with variable values, the
first and last five), the LLM gives a verdict per block (``debug_blocks``, one call), and the LLM writes a
fixed program seeing the trace and the verdicts (``repair``, one call). LDB's seed program is the direct
solve. Each fixed program is a node chained under the previous one; ends as :mod:`.reflexion` does.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..search import Failure, State
from .base import MethodSearch, render_verdicts


@dataclass
class LDB(MethodSearch):
    label = "ldb"

    def search(self) -> str:
        node = self.add(None, ())
        code = self.solve(node)
        result = self.record(node, code)
        self.on_checkpoint(self.tree)
        bare = State(self.problem, (), ())
        while True:
            if self.solved():
                return "solved"
            if self.tree.rollout >= self.config.rollouts:
                return "rollouts"
            self.stop_check()
            failure = self.pick_failure(result.failures)
            if failure is None:  # nothing ran (empty program): no trace, just ask for a program again
                notes: tuple[str, ...] = ("The previous program produced no test result that can be traced.",)
                step = "no failing test to trace"
                failures: tuple[Failure, ...] = ()
            else:
                trace = self.evaluator.trace(code, failure)
                verdicts = self.team.debug_blocks(self.agent, bare, code, failure, trace)
                wrong = next((v for v in verdicts if not v.correct), None)
                notes = (
                    f"Execution trace of the failing test (basic blocks with variable values):\n{trace}",
                    "Your verdict on each block:\n" + (render_verdicts(verdicts) or "(no verdict)"),
                )
                step = f"debug test {failure.index}: " + (
                    f"block {wrong.block} wrong: {wrong.explanation}" if wrong else "no block judged wrong"
                )
                failures = (failure,)
            code = self.team.repair(self.agent, bare, code, failures, notes)
            node = self.add(node, (*node.thoughts, step[:300]))
            result = self.record(node, code)
            self.rollout_done()
