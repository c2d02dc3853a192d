"""The search methods of the paper's Table 1 besides MC-ToA, over the same team, budgets and evaluator.

Why a registry: ``bdc deep-bench`` compares every method at an equal LLM-call budget through the same
:class:`~..runner.DeepRunner` (response cache, call accounting, stored trees, sandbox evaluator), so a
method is picked by ``SearchConfig.method`` and built here with MC-ToA's constructor signature.

  * ``reflexion`` (:mod:`.reflexion`), ``ldb`` (:mod:`.ldb`): iterate on one program;
  * ``tot`` (:mod:`.tot`): BFS over thoughts with LLM self-evaluation;
  * ``rap`` (:mod:`.rap`): MCTS with an LLM reward, no test runs;
  * ``lats`` (:mod:`.lats`): MCTS with public tests + LLM value and reflections;
  * ``rethinkmcts`` (:mod:`.rethink`): MCTS with execution feedback and in-place rethink.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...errors import ConfigError
from .. import events as ev
from ..search import Evaluator, PublicProblem, Search, SearchConfig
from ..tree import Tree
from .base import BlockVerdict, MethodSearch, MethodTeam
from .lats import LATS
from .ldb import LDB
from .rap import RAP
from .reflexion import Reflexion
from .rethink import RethinkMCTS
from .tot import ToT

BASELINES: dict[str, type[MethodSearch]] = {
    "reflexion": Reflexion,
    "tot": ToT,
    "rap": RAP,
    "lats": LATS,
    "ldb": LDB,
    "rethinkmcts": RethinkMCTS,
}

__all__ = ["BASELINES", "BlockVerdict", "MethodSearch", "MethodTeam", "first_batch", "make_search"]


def make_search(
    problem: PublicProblem,
    team: Any,
    evaluator: Evaluator,
    config: SearchConfig,
    *,
    emit: Callable[[ev.DeepEvent], None] = lambda e: None,
    on_checkpoint: Callable[[Tree], None] = lambda t: None,
    check_stop: Callable[[], str | None] = lambda: None,
) -> Search | MethodSearch:
    """The search ``config.method`` names, with the runner's hooks."""
    if config.method == "mc-toa":
        return Search(
            problem, team, evaluator, config, emit=emit, on_checkpoint=on_checkpoint, check_stop=check_stop
        )
    cls = BASELINES.get(config.method)
    if cls is None:
        known = ", ".join(["mc-toa", *BASELINES])
        raise ConfigError(f"Unknown search method {config.method!r}; known: {known}.")
    return cls(
        problem, team, evaluator, config, emit=emit, on_checkpoint=on_checkpoint, check_stop=check_stop
    )


def first_batch(config: SearchConfig, n_agents: int) -> int:
    """Calls of an attempt's first batch: MC-ToA's root solve (every agent, ``samples`` programs each) or
    a baseline's one direct solve."""
    return n_agents * config.samples if config.method == "mc-toa" else 1
