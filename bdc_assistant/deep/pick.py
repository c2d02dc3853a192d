"""The final pick of a search (or of several attempts at one problem): ``first`` or S*-style ``sstar``.

``first`` (the search's documented rule, :func:`.tree.best_candidate`): the candidate with the best public
pass rate; ties go to the earliest candidate (lowest node id, then policy order, then sample; across
attempts, the earlier attempt).

``sstar`` (after S*, Li et al. 2025, "S*: Test Time Scaling for Code Generation"): when two or more
*distinct* programs tie at the best public pass rate, the public tests cannot tell them apart. One LLM call
(counted in the budget like any other) asks an agent for a few inputs on which the tied programs would
behave differently; every tied program runs on those inputs *in the sandbox* (the evaluator's sandbox, as
for simulation; never in this process); programs are clustered by behaviour (per input: exit status and
whitespace-normalised stdout) and the pick is the earliest candidate of the largest cluster. Votes are
candidates, not distinct programs: the same program written twice (two policies, two nodes, two attempts)
counts twice. Ties between clusters go to the cluster holding the earliest candidate, so the ``first``
pick wins whenever the evidence is even. Only the first ``max_programs`` distinct tied programs (in
``first`` order) are shown to the agent and clustered; later ones are not candidates.

What a model or a problem can get wrong is an expected outcome (a :class:`Pick` value), never an error:
the ``first`` pick is kept with ``fallback`` saying why — ``malformed`` (no JSON list with a usable input),
``checker`` (the problem accepts many valid outputs, so outputs cannot be compared by equality),
``no_agent`` (no chat agent to ask; base models cannot follow the instruction), ``no_sandbox`` (the
evaluator cannot run programs on new inputs), ``budget`` (no call left for it) or ``call:<reason>`` (the
call itself failed: provider error, cancel, replay miss).

The functions here are pure except :func:`sstar`, which drives two injected callables: ``ask`` (programs →
the model's raw answer; raises :class:`~.search.StopSearch` when the call cannot be made) and ``probe``
(program, inputs → one behaviour string per input).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from .agents import parse_inputs
from .search import PublicProblem, StopSearch
from .tree import Tree

PickMode = Literal["first", "sstar"]


@dataclass(frozen=True)
class Candidate:
    """One program a search produced, with its public pass rate and where it came from."""

    code: str
    pass_rate: float
    origin: str = ""  # "a<attempt>/n<node>/<policy>/s<sample>"
    node: int | None = None


@dataclass(frozen=True)
class Ties:
    """The distinct programs at the best public pass rate, in first-appearance order, with their votes."""

    programs: tuple[str, ...]
    votes: tuple[int, ...]
    pass_rate: float
    origins: tuple[str, ...] = ()
    nodes: tuple[int | None, ...] = ()

    @property
    def tied(self) -> bool:
        return len(self.programs) > 1


@dataclass(frozen=True)
class Pick:
    """The final program and how it was chosen.

    ``mode`` is what was asked for; ``used`` is the rule that chose ``code`` (``first`` when there was no
    tie or S* fell back; then ``fallback`` names why). ``index`` is the chosen program's position among the
    tied programs (0 = the ``first`` pick). ``calls``/``tokens_*`` are what the pick itself spent."""

    code: str
    pass_rate: float
    mode: PickMode = "first"
    used: PickMode = "first"
    tied: int = 0  # distinct programs at the best public pass rate
    index: int = 0
    fallback: str = ""
    inputs: tuple[str, ...] = ()
    clusters: tuple[tuple[int, ...], ...] = ()
    origin: str = ""
    node: int | None = None
    calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0

    @property
    def changed(self) -> bool:
        """S* chose another program than ``first`` would have."""
        return self.index != 0

    def as_record(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "used": self.used,
            "tied": self.tied,
            "index": self.index,
            "changed": self.changed,
            "fallback": self.fallback,
            "inputs": list(self.inputs),
            "clusters": [list(c) for c in self.clusters],
            "origin": self.origin,
            "node": self.node,
            "calls": self.calls,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
        }


# ---- pure parts -------------------------------------------------------------------------------------


def tree_candidates(tree: Tree, attempt: int = 0) -> list[Candidate]:
    """Every solution of every simulated node, in the ``first`` tie-break order (node id, policy, sample)."""
    return [
        Candidate(sol.code, sol.pass_rate, f"a{attempt}/n{node.id}/{sol.policy}/s{sol.sample}", node.id)
        for node in sorted(tree.nodes.values(), key=lambda n: n.id)
        for sol in node.solutions
    ]


def find_ties(candidates: Iterable[Candidate], max_programs: int) -> Ties:
    """The distinct programs at the best public pass rate (at most ``max_programs``, earliest first) and
    how many candidates wrote each. Empty code is never a candidate program."""
    cands = [c for c in candidates if c.code.strip()]
    if not cands:
        return Ties((), (), 0.0)
    best = max(c.pass_rate for c in cands)
    programs: list[str] = []
    origins: list[str] = []
    nodes: list[int | None] = []
    votes: dict[str, int] = {}
    for c in cands:
        if c.pass_rate != best:
            continue
        if c.code not in votes:
            if len(programs) >= max(max_programs, 1):
                continue
            programs.append(c.code)
            origins.append(c.origin)
            nodes.append(c.node)
            votes[c.code] = 0
        votes[c.code] += 1
    return Ties(tuple(programs), tuple(votes[p] for p in programs), best, tuple(origins), tuple(nodes))


def first_pick(candidates: Iterable[Candidate], mode: PickMode = "first", max_programs: int = 8) -> Pick:
    """The ``first`` rule: the earliest candidate at the best public pass rate."""
    ties = find_ties(candidates, max_programs)
    if not ties.programs:
        return Pick("", 0.0, mode=mode)
    return Pick(
        ties.programs[0],
        ties.pass_rate,
        mode=mode,
        tied=len(ties.programs),
        origin=ties.origins[0],
        node=ties.nodes[0],
    )


def behaviour(passed: bool, status: str, stdout: str) -> str:
    """One run's behaviour for clustering: ``ok:`` + stdout with trailing spaces and blank lines dropped,
    or the failure status alone (a crash's partial output is noise)."""
    if not passed:
        return status
    return "ok:" + "\n".join(line.rstrip() for line in stdout.strip("\n").splitlines()).strip()


def cluster(signatures: Sequence[Sequence[str]]) -> tuple[tuple[int, ...], ...]:
    """Program indices grouped by identical behaviour, clusters in order of their first member."""
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, sig in enumerate(signatures):
        groups.setdefault(tuple(sig), []).append(i)
    return tuple(tuple(g) for g in groups.values())


def choose(clusters: Sequence[Sequence[int]], votes: Sequence[int]) -> int:
    """The first program of the cluster with the most votes; equal votes go to the earlier cluster."""
    best, best_votes = 0, -1
    for members in clusters:
        weight = sum(votes[i] for i in members)
        if weight > best_votes:
            best, best_votes = members[0], weight
    return best


# ---- the S* pick --------------------------------------------------------------------------------------


def sstar(
    problem: PublicProblem,
    candidates: Sequence[Candidate],
    *,
    ask: Callable[[Sequence[str]], str] | None,
    probe: Callable[[str, Sequence[str]], Sequence[str]] | None,
    max_programs: int = 4,
    max_inputs: int = 5,
) -> Pick:
    """S* over ``candidates`` (in ``first`` order). ``ask`` None: no agent to ask; ``probe`` None: no
    sandbox to run programs in (both fall back before any call is spent)."""
    base = first_pick(candidates, "sstar", max_programs)
    ties = find_ties(candidates, max_programs)
    if not ties.tied:
        return base
    if problem.checker:
        return _fallback(base, "checker")
    if ask is None:
        return _fallback(base, "no_agent")
    if probe is None:
        return _fallback(base, "no_sandbox")
    try:
        answer = ask(ties.programs)
    except StopSearch as stop:
        return _fallback(base, "budget" if stop.reason == "max_calls" else f"call:{stop.reason}")
    inputs = parse_inputs(answer, problem, max_inputs)
    if inputs is None:
        return _fallback(base, "malformed")
    signatures = [tuple(probe(code, inputs)) for code in ties.programs]
    groups = cluster(signatures)
    index = choose(groups, ties.votes)
    return Pick(
        ties.programs[index],
        ties.pass_rate,
        mode="sstar",
        used="sstar",
        tied=len(ties.programs),
        index=index,
        inputs=inputs,
        clusters=groups,
        origin=ties.origins[index],
        node=ties.nodes[index],
    )


def _fallback(base: Pick, reason: str) -> Pick:
    return replace(base, mode="sstar", used="first", fallback=reason)
