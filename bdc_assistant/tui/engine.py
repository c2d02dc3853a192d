"""The port between the TUI and everything that computes: what each screen may ask of the engine.

Each consumer sees only its own part: the main screen a :class:`LocalEngine`, the deep screen a
:class:`DeepEngine`, the retrain screen a :class:`RetrainEngine`; :class:`Engine` is all three, which is
what the app is given. Every method may block, so the app calls them from thread workers. The real
implementation is :class:`~.real_engine.RealEngine`; the tests drive the app with scripted fakes of the
same Protocols. This module imports nothing but value types.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..types import CancelToken, SolverEvent, TestCase, Verdict


@dataclass(frozen=True)
class EngineInfo:
    """What the status bar shows about the local solver."""

    backend: str = "…"
    model: str = "…"
    bundle: str | None = None
    state: str = "warming"  # "warming" | "ready" | "error"
    detail: str = ""
    device: str = ""  # "cuda…" / "cpu" for torch; empty for llama.cpp (CPU build)

    @property
    def label(self) -> str:
        """What the status bar calls the backend: CUDA torch, CPU torch, CPU llama.cpp."""
        if self.backend == "torch":
            return "CUDA torch" if self.device.startswith("cuda") else "CPU torch"
        if self.backend == "llamacpp":
            return "CPU llama.cpp"
        return self.backend


# ---- deep mode, as the TUI sees it (folded from the deep runner's own events) ------------------------


@dataclass(frozen=True)
class DeepNode:
    """One node of the search tree: an ordered list of thoughts with its public pass rate."""

    id: str
    parent: str | None
    label: str
    pr: float | None = None
    pruned: bool = False
    refined: bool = False


@dataclass(frozen=True)
class DeepProgress:
    """A snapshot of a deep run; the deep screen redraws from the latest one."""

    nodes: tuple[DeepNode, ...] = ()
    calls: int = 0
    max_calls: int = 0
    spend_usd: float = 0.0
    budget_usd: float = 0.0
    tokens: int = 0  # input + output tokens so far (cache hits included, like calls)
    max_tokens: int = 0  # the token budget; 0 = none
    method: str = "mc-toa"
    elapsed_s: float = 0.0
    best_pr: float | None = None
    best_code: str = ""
    done: bool = False
    stop_reason: str = ""
    run_id: str | None = None


@dataclass(frozen=True)
class DeepRequest:
    problem: str
    tests: tuple[TestCase, ...]
    agents: tuple[str, ...]
    max_calls: int
    budget_usd: float
    method: str = "mc-toa"


@dataclass(frozen=True)
class Provider:
    """A deep-mode provider choice shown on the deep screen (from the provider presets)."""

    name: str
    env_key: str
    models: tuple[str, ...] = field(default_factory=tuple)
    base_url: str = ""

    def agent(self, model: str) -> str:
        """The deep runner's agent spec for this provider's default endpoint."""
        return f"{self.name}::{model}"


@dataclass(frozen=True)
class RetrainStatus:
    trajectories: int | None
    gpu: bool
    active_bundle: str | None
    detail: str = ""
    new_since_active: int | None = None


class LocalEngine(Protocol):
    """What the main screen asks: the local solver and the sandbox."""

    def warm_up(self) -> EngineInfo:
        """Load the local solver (slow the first time); return what the status bar shows."""
        ...

    def solve(self, problem: str, cancel: CancelToken) -> Iterator[SolverEvent]:
        """Stream a local answer: Started, ThoughtToken…, StageDone, CodeToken…, StageDone, Answer."""
        ...

    def extract_examples(self, problem: str) -> list[TestCase]: ...

    def run_tests(self, code: str, tests: Sequence[TestCase]) -> list[Verdict]: ...


class DeepEngine(Protocol):
    """What the deep screen asks: providers, consent, keys, and the search itself."""

    def deep_providers(self) -> list[Provider]: ...

    def consent_text(self, agents: Sequence[str]) -> str:
        """What is sent, and to which hosts, for these agents (``provider:URL:model`` specs)."""
        ...

    def has_consent(self, agents: Sequence[str]) -> bool: ...

    def record_consent(self, agents: Sequence[str]) -> None: ...

    def key_source(self, provider: str) -> str | None:
        """Where the provider's API key comes from (an env var name, 'keyring') or None."""
        ...

    def store_key(self, provider: str, value: str) -> None: ...

    def deep_run(
        self, request: DeepRequest, on_progress: Callable[[DeepProgress], None], cancel: CancelToken
    ) -> DeepProgress: ...


class RetrainEngine(Protocol):
    """What the retrain screen asks: the trajectory count and the commands it runs in the background."""

    def retrain_status(self) -> RetrainStatus: ...

    def retrain_command(self, force: bool = False) -> list[str]:
        """argv of ``bdc retrain --json`` (run in the background; its last line is a JSON report)."""
        ...

    def compare_bundles(self, new_id: str) -> dict[str, dict[str, Any]]:
        """{"current": metrics of the active bundle, "new": metrics of ``new_id``} (evaluation summaries)."""
        ...

    def bundles_command(self, *args: str) -> list[str]:
        """argv of ``bdc bundles ARGS`` (switch to a bundle, roll back)."""
        ...


class Engine(LocalEngine, DeepEngine, RetrainEngine, Protocol):
    """Everything the app hands to its screens."""
