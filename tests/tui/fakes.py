"""Scripted engines for the TUI tests: no model, no sandbox, no network."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from bdc_assistant.errors import ConfigError
from bdc_assistant.tui.engine import DeepProgress, DeepRequest, EngineInfo, Provider, RetrainStatus
from bdc_assistant.tui.real_engine import preset_providers
from bdc_assistant.types import (
    Answer,
    CancelToken,
    CodeToken,
    Gates,
    SolverEvent,
    StageDone,
    Started,
    Status,
    TestCase,
    ThoughtToken,
    Verdict,
)

CODE = "def add(a, b):\n    return a + b\n\nprint(add(*map(int, input().split())))\n"
PLAN = "1. Read two integers.\n2. Print their sum.\n"


def fake_gates() -> Gates:
    rows = tuple(
        tuple(round(((layer * 7 + j * 3) % 11) / 10.0, 2) for j in range(3 * 4)) for layer in range(6)
    )
    return Gates(
        rows,
        n_experts=3,
        rank=4,
        cluster_similarity=(0.81, 0.42, 0.17),
        cluster_names=("greedy", "strings", "graphs"),
    )


@dataclass
class FakeEngine:
    """Streams PLAN then CODE one piece at a time; ``gate`` lets a test hold the stream mid-way."""

    plan: str = PLAN
    code: str = CODE
    delay: float = 0.0
    hold_after: int | None = None  # block after this many code pieces until released or cancelled
    release: threading.Event = field(default_factory=threading.Event)
    consent: bool = False
    presets_broken: str | None = None  # deep_providers() raises ConfigError with this text
    examples: list[TestCase] = field(default_factory=lambda: [TestCase("1 2\n", "3\n", origin="statement")])
    solves: int = 0
    deep_runs: int = 0
    deep_requests: list[DeepRequest] = field(default_factory=list)
    consent_recorded: int = 0
    tests_run: list[tuple[str, list[TestCase]]] = field(default_factory=list)
    stopped_at: int | None = None
    keys: dict[str, str] = field(default_factory=dict)

    def warm_up(self) -> EngineInfo:
        return EngineInfo("llamacpp", "gemma-3-270m-q4_k_m.gguf", "fake-bundle", "ready")

    def _pieces(self, text: str) -> list[str]:
        return [line + "\n" for line in text.splitlines()]

    def solve(self, problem: str, cancel: CancelToken) -> Iterator[SolverEvent]:
        self.solves += 1
        gates = fake_gates()
        yield Started("llamacpp", "gemma-3-270m-q4_k_m.gguf", "fake-bundle", gates, 1.0)
        for piece in self._pieces(self.plan):
            yield ThoughtToken(piece)
        yield StageDone("thought", self.plan.strip(), 4, 0.1)
        sent = ""
        for i, piece in enumerate(self._pieces(self.code)):
            if self.hold_after is not None and i == self.hold_after:
                while not (self.release.is_set() or cancel.cancelled):
                    time.sleep(0.01)
            if cancel.cancelled:
                self.stopped_at = i
                break
            if self.delay:
                time.sleep(self.delay)
            sent += piece
            yield CodeToken(piece)
        yield StageDone("solution", sent, 8, 0.2)
        yield Answer(
            problem,
            self.plan.strip(),
            sent,
            sent,
            "llamacpp",
            "gemma-3-270m-q4_k_m.gguf",
            "fake-bundle",
            12,
            0.5,
            24.0,
            cancelled=cancel.cancelled,
            gates=gates,
        )

    def extract_examples(self, problem: str) -> list[TestCase]:
        return list(self.examples)

    def run_tests(self, code: str, tests: Sequence[TestCase]) -> list[Verdict]:
        self.tests_run.append((code, list(tests)))
        out = []
        for t in tests:
            ok = t.kind == "stdio" and t.output.strip() == str(sum(int(x) for x in t.input.split()))
            out.append(Verdict(Status.PASS if ok else Status.WRONG, stdout="", seconds=0.01))
        return out

    def deep_providers(self) -> list[Provider]:
        if self.presets_broken:
            raise ConfigError(self.presets_broken)
        return preset_providers()

    def consent_text(self, agents: Sequence[str]) -> str:
        return "It sends the problem and its public tests.\n\nRecipients:\n  - api.openai.com"

    def has_consent(self, agents: Sequence[str]) -> bool:
        return self.consent

    def record_consent(self, agents: Sequence[str]) -> None:
        self.consent_recorded += 1
        self.consent = True

    def key_source(self, provider: str) -> str | None:
        return self.keys.get(provider) and "keyring"

    def store_key(self, provider: str, value: str) -> None:
        self.keys[provider] = value

    def deep_run(
        self, request: DeepRequest, on_progress: Callable[[DeepProgress], None], cancel: CancelToken
    ) -> DeepProgress:
        from bdc_assistant.deep import events as ev
        from bdc_assistant.tui.deep_adapter import DeepTracker

        self.deep_runs += 1
        self.deep_requests.append(request)
        tr = DeepTracker(max_calls=request.max_calls, budget_usd=request.budget_usd, method=request.method)
        script = [
            ev.RunStarted("run-1", "tui", ("openai::gpt-4o-mini",)),
            ev.NodeAdded(0, None, "", None, 1.0, 0),
            ev.NodeAdded(1, 0, "Sum the two numbers read from stdin", "openai", 0.5, 1),
            ev.NodeSimulated(1, 1.0, 1.0, 2, False, 1),
            ev.NodeAdded(2, 0, "Multiply them", "openai", 0.5, 1),
            ev.NodePruned(2, 0.0, 0.5, 1),
            ev.NodeRefined(2, 3, "anthropic", "openai", "wrong operator", 1),
            ev.NodeAdded(3, 0, "Add them instead", "openai", 0.5, 1),
            ev.Spend("openai", "simulate", 6, 900, 300, 0.0123, False),
            ev.RolloutDone(1, 1.0, 4, 6, 0.0123),
            ev.Finished("run-1", "solved", 1.0, {"best_code": "print(sum(map(int, input().split())))"}),
        ]
        last = tr.snapshot()
        for e in script:
            last = tr.apply(e)
            last = DeepProgress(**{**last.__dict__, "elapsed_s": 1.5})
            on_progress(last)
        return last

    def retrain_status(self) -> RetrainStatus:
        return RetrainStatus(trajectories=12, gpu=False, active_bundle="fake-bundle")

    def retrain_command(self, force: bool = False) -> list[str]:
        import sys

        script = (
            "import json\nfor i in range(1, 4): print(f'step {i}/3', flush=True)\n"
            "print(json.dumps({'ran': True, 'new_bundle': 'b2', 'switched': False, 'message': 'registered'}))"
        )
        return [sys.executable, "-c", script]

    def compare_bundles(self, new_id: str) -> dict[str, dict[str, float]]:
        return {"current": {"pass@1": 0.1}, "new": {"pass@1": 0.2}} if new_id == "b2" else {}

    def bundles_command(self, *args: str) -> list[str]:
        import sys

        return [sys.executable, "-c", f"print('bundles {' '.join(args)}')"]

    def close(self) -> None:
        pass
