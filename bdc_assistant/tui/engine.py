"""The one port between the TUI and everything that computes: solver, sandbox, deep mode, retraining.

The app talks to an :class:`Engine` and consumes its events; it never imports the solver, sandbox or deep
packages itself. :class:`RealEngine` adapts the real modules, importing them lazily *inside worker
threads*, so the first frame never waits for torch or llama.cpp. Parts written by other components are
looked up tolerantly: a missing feature becomes a one-line reason the screen shows ("deep mode engine not
installed"), never a crash. Tests drive the app with scripted fakes implementing the same Protocol.
"""

from __future__ import annotations

import contextlib
import importlib
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import BackendUnavailable
from ..types import SolverEvent, TestCase, Verdict

if TYPE_CHECKING:
    from ..backends.base import CancelToken
    from ..config import Settings


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


# ---- deep mode, as the TUI sees it (adapted from the deep runner's own events) ----------------------


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


@dataclass(frozen=True)
class RetrainStatus:
    trajectories: int | None
    gpu: bool
    active_bundle: str | None
    detail: str = ""
    new_since_active: int | None = None


@dataclass(frozen=True)
class Provider:
    """A deep-mode provider choice shown on the deep screen."""

    name: str
    env_key: str
    models: tuple[str, ...] = field(default_factory=tuple)
    base_url: str = ""

    def agent(self, model: str) -> str:
        """The deep runner's agent spec for this provider's default endpoint."""
        return f"{self.name}::{model}"


PROVIDERS: tuple[Provider, ...] = (
    Provider("openai", "OPENAI_API_KEY", ("gpt-4o-mini", "gpt-4.1-mini"), "https://api.openai.com/v1"),
    Provider("anthropic", "ANTHROPIC_API_KEY", ("claude-3-5-haiku-latest",), "https://api.anthropic.com"),
    Provider("llamacpp", "LLAMACPP_API_KEY", ("local",), "http://127.0.0.1:8080/v1"),
)


class Engine(Protocol):
    """What the app needs from the world. Every method may block; the app calls them from workers."""

    def warm_up(self) -> EngineInfo:
        """Load the local solver (slow the first time); return what the status bar shows."""
        ...

    def solve(self, problem: str, cancel: CancelToken) -> Iterator[SolverEvent]:
        """Stream a local answer: Started, ThoughtToken…, StageDone, CodeToken…, StageDone, Answer."""
        ...

    def extract_examples(self, problem: str) -> list[TestCase]: ...

    def run_tests(self, code: str, tests: Sequence[TestCase]) -> list[Verdict]: ...

    def deep_unavailable(self) -> str | None:
        """None when deep mode can run here, else one sentence saying why not."""
        ...

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

    def close(self) -> None: ...


def _optional(module: str) -> Any | None:
    """Import ``module`` if its component has landed; None when it is absent (not when it is broken)."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and (module == exc.name or module.startswith(exc.name + ".")):
            return None
        raise


def _first_attr(mod: Any, names: Sequence[str]) -> Any | None:
    for name in names:
        fn = getattr(mod, name, None)
        if fn is not None:
            return fn
    return None


def gpu_present() -> bool:
    """A CUDA GPU is present (asks nvidia-smi; importing torch only to find out costs seconds)."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return False
    try:
        return subprocess.run([exe, "-L"], capture_output=True, timeout=5).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


class RealEngine:
    """Adapts the real solver, sandbox, deep and trainer modules. Thread-safe warm-up; one solve at a time."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._solver: Any = None
        self._sandbox: Any = None
        self._lock = threading.Lock()
        self._solve_lock = threading.Lock()

    # -- local solver ------------------------------------------------------------------------------
    def warm_up(self) -> EngineInfo:
        with self._lock:
            if self._solver is None:
                session = _optional("bdc_assistant.solver.session")
                if session is None:
                    raise BackendUnavailable(
                        "The local solver (bdc_assistant.solver.session) is not installed."
                    )
                self._solver = session.open_solver(self.settings, backend=None, bundle=None)
            info = dict(self._solver.info())
            device = str(getattr(getattr(self._solver, "generator", None), "device", "") or "")
        return EngineInfo(
            backend=str(info.get("backend", "?")),
            model=str(info.get("model", "?")),
            bundle=info.get("bundle"),
            state="ready",
            detail=str(info.get("bundle_note", "")),
            device=device,
        )

    def solve(self, problem: str, cancel: CancelToken) -> Iterator[SolverEvent]:
        self.warm_up()
        with self._solve_lock:  # one Llama object is not re-entrant
            yield from self._solver.solve(problem, cancel=cancel)

    # -- sandbox -----------------------------------------------------------------------------------
    def _sandbox_mod(self) -> Any:
        mod = _optional("bdc_assistant.sandbox")
        if mod is None or not hasattr(mod, "default_sandbox"):
            raise BackendUnavailable("The sandbox (bdc_assistant.sandbox) is not installed.")
        return mod

    def extract_examples(self, problem: str) -> list[TestCase]:
        mod = self._sandbox_mod()
        fn = getattr(mod, "extract_examples", None)
        return list(fn(problem)) if fn else []

    def run_tests(self, code: str, tests: Sequence[TestCase]) -> list[Verdict]:
        with self._lock:
            if self._sandbox is None:
                self._sandbox = self._sandbox_mod().default_sandbox()
        return list(self._sandbox.run_tests(code, list(tests)))

    # -- deep mode ---------------------------------------------------------------------------------
    def deep_unavailable(self) -> str | None:
        for module in ("bdc_assistant.deep.runner", "bdc_assistant.consent", "bdc_assistant.keys"):
            if _optional(module) is None:
                return f"The deep mode engine is not installed in this build ({module} is missing)."
        return None

    def deep_providers(self) -> list[Provider]:
        from ..deep.providers.presets import load_presets

        out = []
        for p in load_presets().values():
            models = tuple(p.models) or ("default",)
            out.append(Provider(p.name, p.key_env, models, p.base_url))
        return out or list(PROVIDERS)

    def _base_urls(self, agents: Sequence[str]) -> list[str]:
        from ..deep.providers.presets import parse_agent

        return [parse_agent(a).base_url for a in agents]

    def consent_text(self, agents: Sequence[str]) -> str:
        from ..consent import consent_text

        return str(consent_text(self._base_urls(agents)))

    def has_consent(self, agents: Sequence[str]) -> bool:
        from ..consent import has_consent
        from ..store.runs import RunStore

        store = RunStore()
        try:
            return bool(has_consent(store, self._base_urls(agents)))
        finally:
            store.close()

    def record_consent(self, agents: Sequence[str]) -> None:
        from ..consent import record_consent
        from ..store.runs import RunStore

        store = RunStore()
        try:
            record_consent(store, self._base_urls(agents), scope="always")
        finally:
            store.close()

    def key_source(self, provider: str) -> str | None:
        from .. import keys

        got = keys.get_key(provider)
        return got[1] if got else None

    def store_key(self, provider: str, value: str) -> None:
        from .. import keys

        keys.set_key(provider, value)

    def deep_run(
        self, request: DeepRequest, on_progress: Callable[[DeepProgress], None], cancel: CancelToken
    ) -> DeepProgress:
        from .deep_adapter import run_deep

        return run_deep(self.settings, request, on_progress, cancel)

    # -- retraining --------------------------------------------------------------------------------
    def retrain_status(self) -> RetrainStatus:
        bundles = _optional("bdc_assistant.bundles")
        if bundles is None:
            return RetrainStatus(None, gpu_present(), None, "bundle registry not installed")
        entry = bundles.active_entry()
        active = f"{entry.id} ({entry.source})" if entry is not None else None
        return RetrainStatus(
            trajectories=int(bundles.count_trajectories()),
            gpu=gpu_present(),
            active_bundle=active,
            new_since_active=int(bundles.new_trajectories_since_active()),
        )

    def retrain_command(self, force: bool = False) -> list[str]:
        return [sys.executable, "-m", "bdc_assistant", "retrain", "--json", *(["--force"] if force else [])]

    def compare_bundles(self, new_id: str) -> dict[str, dict[str, Any]]:
        from .. import bundles

        out: dict[str, dict[str, Any]] = {"current": {}, "new": {}}
        for entry in bundles.list_bundles():
            metrics = entry.summary().get("metrics") or {}
            if entry.id == new_id:
                out["new"] = dict(metrics)
            elif entry.active:
                out["current"] = dict(metrics)
        return out

    def bundles_command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "bdc_assistant", "bundles", *args]

    def close(self) -> None:
        with self._lock:
            for obj in (self._solver, self._sandbox):
                closer = getattr(obj, "close", None)
                if closer:
                    with contextlib.suppress(Exception):  # closing must not mask the exit
                        closer()
            self._solver = self._sandbox = None


def elapsed_since(start: float) -> float:
    return time.monotonic() - start
