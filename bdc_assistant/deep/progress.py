"""Deep-run events as one line of text each, for a terminal (``bdc deep``, ``bdc runs resume``) or an
editor (the ACP agent): a line per rollout and per notable event, nothing for the rest."""

from __future__ import annotations

from typing import TextIO

from . import events as ev


def progress_line(e: ev.DeepEvent) -> str | None:
    match e:
        case ev.RunStarted(run_id=run_id, agents=agents, resumed=resumed):
            return f"run {run_id}{' (resumed)' if resumed else ''}: {len(agents)} agents: {', '.join(agents)}"
        case ev.NodeSimulated(rollout=0, node_id=0, pass_rate=pr, best_pass_rate=best):
            return f"direct solve: public PR {pr:.3f} (best {best:.3f})"
        case ev.NodePruned(node_id=nid, pass_rate=pr, parent_pass_rate=parent):
            return f"  pruned node {nid}: PR {pr:.3f} < parent {parent:.3f}"
        case ev.NodeRefined(ill_node_id=ill, new_node_id=new, critic=critic, author=author):
            return f"  refined node {ill} -> {new} ({critic} reviewed, {author} rewrote)"
        case ev.RolloutDone():
            return (
                f"rollout {e.rollout}: best public PR {e.best_public_pass_rate:.3f}, nodes {e.nodes}, "
                f"calls {e.calls}, spend ${e.spend_usd:.4f}"
            )
        case ev.Finished(stopped_by=stopped_by, public_pass_rate=pr):
            return f"stopped by {stopped_by}: best public PR {pr:.3f}"
    return None


class Progress:
    """Prints :func:`progress_line` of every event that has one."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def __call__(self, e: ev.DeepEvent) -> None:
        line = progress_line(e)
        if line:
            print(line, file=self.out, flush=True)
