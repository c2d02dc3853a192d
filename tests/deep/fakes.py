"""Scripted fake policies and evaluator for golden-tree tests (no LLM, no sandbox).

A program written by the fake team is ``PR=<x>`` plus a comment naming the author and state; the fake
evaluator reads the number back. Pass rates come from a table keyed by the last thought ("" = root).

The Table-1 baselines' calls (:mod:`bdc_assistant.deep.methods`): ``reflect`` answers "reflection <k>"
(k = 1, 2, ... per call); the k-th ``repair`` writes ``PR=repairs[k]``; ``evaluate_state`` answers
``values`` keyed by the thought path ("A1.0|A2.1"), else by the last thought, else ``default_value``;
``debug_blocks`` answers ``verdicts``. Every call's arguments are kept in ``seen`` (kind, dict).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bdc_assistant.deep.methods import BlockVerdict
from bdc_assistant.deep.search import Evaluation, Failure, State, StopSearch
from bdc_assistant.deep.tree import Proposal


@dataclass
class ScriptedTeam:
    names: tuple[str, ...]
    # last thought -> policy -> pass rate of the code that policy writes from that state
    rates: dict[str, dict[str, float]] = field(default_factory=dict)
    # policy -> raw scores of its proposals (len = width); thoughts are "<policy><depth>.<i>"
    scores: dict[str, list[float | None]] = field(default_factory=dict)
    default_rate: float = 0.0
    # refined thoughts: ill thought -> replacement thought
    regen: Callable[[str, str], str] = lambda ill, summary: ill + "'"
    max_calls: int | None = None
    calls: list[tuple[str, str, tuple[str, ...]]] = field(default_factory=list)
    repairs: list[float] = field(default_factory=list)
    values: dict[str, float] = field(default_factory=dict)
    default_value: float = 0.5
    verdicts: list[BlockVerdict] = field(
        default_factory=lambda: [BlockVerdict(0, True, "reads input"), BlockVerdict(1, False, "wrong sum")]
    )
    seen: list[tuple[str, dict[str, object]]] = field(default_factory=list)

    def _call(self, kind: str, policy: str, thoughts: tuple[str, ...]) -> None:
        if self.max_calls is not None and len(self.calls) >= self.max_calls:
            raise StopSearch("max_calls")
        self.calls.append((kind, policy, thoughts))

    def propose(self, state: State, width: int) -> list[list[Proposal]]:
        # reserve the whole batch first, like the real team: all-or-nothing
        if self.max_calls is not None and len(self.calls) + len(self.names) > self.max_calls:
            raise StopSearch("max_calls")
        self.seen.append(("propose", {"thoughts": state.thoughts, "notes": state.notes}))
        out = []
        for name in self.names:
            self._call("propose", name, state.thoughts)
            sc = self.scores.get(name, [1.0] * width)
            out.append([Proposal(f"{name}{len(state.thoughts) + 1}.{i}", sc[i]) for i in range(width)])
        return out

    def solve(self, state: State, samples: int) -> list[list[str]]:
        if self.max_calls is not None and len(self.calls) + len(self.names) * samples > self.max_calls:
            raise StopSearch("max_calls")
        last = state.thoughts[-1] if state.thoughts else ""
        self.seen.append(("solve", {"thoughts": state.thoughts, "notes": state.notes}))
        out = []
        for name in self.names:
            codes = []
            for s in range(samples):
                self._call("solve", name, state.thoughts)
                rate = self.rates.get(last, {}).get(name, self.default_rate)
                codes.append(f"# {name} s{s} at {'|'.join(state.thoughts)}\nPR={rate}")
            out.append(codes)
        return out

    def summarise(self, critic: str, state: State, code: str, failures: Sequence[Failure], trace: str) -> str:
        self._call("summarise", critic, state.thoughts)
        return f"{critic} says: {len(failures)} failing; trace={trace}"

    def affords(self, phases: Sequence[str]) -> bool:
        return self.max_calls is None or self.max_calls - len(self.calls) >= len(phases)

    def regenerate(self, author: str, parent: State, ill_thought: str, summary: str) -> str:
        self._call("regenerate", author, parent.thoughts)
        self.seen.append(("regenerate", {"ill_thought": ill_thought, "summary": summary}))
        return self.regen(ill_thought, summary)

    # ---- the Table-1 baselines' calls ---------------------------------------------------------------

    def reflect(self, agent: str, state: State, code: str, failures: Sequence[Failure]) -> str:
        self._call("reflect", agent, state.thoughts)
        self.seen.append(("reflect", {"code": code, "failures": tuple(failures)}))
        return f"reflection {sum(k == 'reflect' for k, _, _ in self.calls)}"

    def repair(
        self, agent: str, state: State, code: str, failures: Sequence[Failure], notes: Sequence[str]
    ) -> str:
        self._call("repair", agent, state.thoughts)
        k = sum(kind == "repair" for kind, _, _ in self.calls) - 1
        self.seen.append(("repair", {"code": code, "failures": tuple(failures), "notes": tuple(notes)}))
        rate = self.repairs[k] if k < len(self.repairs) else self.default_rate
        return f"# {agent} repair{k}\nPR={rate}"

    def evaluate_state(self, agent: str, state: State, code: str = "") -> float:
        self._call("evaluate", agent, state.thoughts)
        self.seen.append(("evaluate", {"thoughts": state.thoughts, "code": code}))
        last = state.thoughts[-1] if state.thoughts else ""
        return self.values.get("|".join(state.thoughts), self.values.get(last, self.default_value))

    def debug_blocks(
        self, agent: str, state: State, code: str, failure: Failure, trace: str
    ) -> list[BlockVerdict]:
        self._call("debug", agent, state.thoughts)
        self.seen.append(("debug", {"code": code, "failure": failure, "trace": trace}))
        return list(self.verdicts)


class MarkerEvaluator:
    """Reads ``PR=<x>`` from the code; reports 4 public tests with round(4·x) passing."""

    def __init__(self) -> None:
        self.evaluated: list[str] = []
        self.traced: list[str] = []
        self.traced_tests: list[int] = []

    def evaluate(self, code: str) -> Evaluation:
        self.evaluated.append(code)
        m = re.search(r"PR=([0-9.]+)", code)
        rate = float(m.group(1)) if m else 0.0
        n_pass = round(rate * 4)
        statuses = tuple(["pass"] * n_pass + ["wrong"] * (4 - n_pass))
        failures = tuple(
            Failure(index=i, input=f"in{i}", expected=f"out{i}", got="?", status="wrong")
            for i in range(n_pass, 4)
        )
        return Evaluation(pass_rate=rate, statuses=statuses, failures=failures)

    def trace(self, code: str, failure: Failure) -> str:
        self.traced.append(code)
        self.traced_tests.append(failure.index)
        return f"[block 0] test {failure.index}"


class TableEvaluator:
    """Pass rates for the three programs of :mod:`tests.deep.httpfakes` (anything else: 0)."""

    def __init__(self) -> None:
        from .httpfakes import BAD, GOOD, HALF

        self.table = {GOOD: 1.0, HALF: 0.5, BAD: 0.0}

    def evaluate(self, code: str) -> Evaluation:
        rate = self.table.get(code, 0.0)
        n_pass = round(rate * 2)
        failures = tuple(
            Failure(index=i, input=f"{i} {i}", expected=str(2 * i), got="0", status="wrong")
            for i in range(n_pass, 2)
        )
        return Evaluation(rate, tuple(["pass"] * n_pass + ["wrong"] * (2 - n_pass)), failures)

    def trace(self, code: str, failure: Failure) -> str:
        return f"[block 0] lines 1-2 state: a={failure.index}"
