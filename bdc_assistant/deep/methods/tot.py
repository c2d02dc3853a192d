"""Tree of Thoughts (Yao et al., NeurIPS 2023), BFS variant: the LLM proposes thoughts, evaluates its own
partial plans, and only the best states survive each level.

Why it is here: Table 1's "deliberate search without execution feedback" row. After the direct solve
(the shared first batch, also an early stop when it already passes), each level proposes ``width``
thoughts from every kept state (one ``propose`` call per state), the LLM scores every new partial plan
(``evaluate_state``, one call each; a malformed score is 0.5), and the ``beam`` best (ties: earliest node)
are kept; the others are closed. After ``max_depth`` levels one program is written from every kept leaf
(best first) and scored on the public tests; the public tests only pick the final program. With width 2,
beam 2 and depth 2 an attempt is 1 + 3 + 6 + 2 = 12 calls. ``rollouts`` counts levels; it does not cap
them (the depth does), so the attempt ends with ``rollouts`` and the bench resamples any calls left.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..tree import Node, normalize_priors
from .base import MethodSearch


@dataclass
class ToT(MethodSearch):
    label = "tot"

    def search(self) -> str:
        cfg = self.config
        root = self.add(None, ())
        self.record(root, self.solve(root))
        self.on_checkpoint(self.tree)
        if self.solved():
            return "solved"
        frontier = [root]
        for _level in range(cfg.max_depth):
            self.stop_check()
            children: list[Node] = []
            for node in frontier:
                proposals = self.team.propose(self.state(node), cfg.width)[0]
                node.expanded = True
                (priors,) = normalize_priors([proposals])
                for prop, prior in zip(proposals, priors, strict=True):
                    if prop.thought.strip():
                        children.append(self.add(node, (*node.thoughts, prop.thought), prior))
            if not children:
                break
            for child in children:
                value = self.team.evaluate_state(self.agent, self.state(child))
                self.values[child.id] = value
                child.visits, child.returns = 1, [value]
            ranked = sorted(children, key=lambda n: (-self.values[n.id], n.id))
            frontier = ranked[: max(cfg.beam, 1)]
            for dropped in ranked[len(frontier) :]:
                dropped.status = "exhausted"
                dropped.reason = f"outside the beam (value {self.values[dropped.id]:.3f})"
            self.rollout_done()
        for leaf in frontier:
            if leaf is root:
                continue
            self.stop_check()
            self.record(leaf, self.solve(leaf))
            if self.solved():
                return "solved"
        return "rollouts"
