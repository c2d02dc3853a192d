"""The one port between the TUI and everything that computes: solver, sandbox, deep mode, retraining.

The app talks to an :class:`Engine` and consumes its events; it never imports the solver, sandbox or deep
packages itself. :class:`RealEngine` adapts the real modules, importing them lazily *inside worker
threads*, so the first frame never waits for torch or llama.cpp. Parts written by other components are
looked up tolerantly: a missing feature becomes a one-line reason the screen shows ("deep mode engine not
installed"), never a crash. Tests drive the app with scripted fakes implementing the same Protocol.
"""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import BackendUnavailable, BdcError
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


@dataclass(frozen=True)
class Provider:
    """A deep-mode provider choice shown on the deep screen."""

    name: str
    env_key: str
    models: tuple[str, ...] = field(default_factory=tuple)


PROVIDERS: tuple[Provider, ...] = (
    Provider("openai", "OPENAI_API_KEY", ("gpt-4o-mini", "gpt-4.1-mini", "gpt-4o")),
    Provider("anthropic", "ANTHROPIC_API_KEY", ("claude-3-5-haiku-latest", "claude-sonnet-4-5")),
    Provider("openai-compatible", "OPENAI_COMPAT_API_KEY", ("local",)),
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

    def has_consent(self) -> bool: ...

    def record_consent(self) -> None: ...

    def key_source(self, env_key: str) -> str | None:
        """Where an API key would come from ('env', 'keyring') or None when there is none."""
        ...

    def store_key(self, env_key: str, value: str) -> None: ...

    def deep_run(
        self, request: DeepRequest, on_progress: Callable[[DeepProgress], None], cancel: CancelToken
    ) -> DeepProgress: ...

    def retrain_status(self) -> RetrainStatus: ...

    def retrain_command(self) -> list[str]:
        """argv that starts the trainer in the background; it prints progress lines."""
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
                    raise BackendUnavailable("The local solver (bdc_assistant.solver.session) is not installed.")
                self._solver = session.open_solver(self.settings, backend=None, bundle=None)
            info = dict(self._solver.info())
        return EngineInfo(
            backend=str(info.get("backend", "?")),
            model=str(info.get("model", "?")),
            bundle=info.get("bundle"),
            state="ready",
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
        if _optional("bdc_assistant.deep.runner") is None and _first_attr(
            _optional("bdc_assistant.deep") or object(), ("run_deep", "DeepRunner", "run")
        ) is None:
            return "The deep mode engine is not installed in this build."
        if _optional("bdc_assistant.consent") is None:
            return "The deep mode consent module is not installed in this build."
        return None

    def has_consent(self) -> bool:
        mod = _optional("bdc_assistant.consent")
        fn = _first_attr(mod, ("has_consent", "consent_given", "is_consented")) if mod else None
        return bool(fn()) if fn else False

    def record_consent(self) -> None:
        mod = _optional("bdc_assistant.consent")
        fn = _first_attr(mod, ("record_consent", "grant_consent", "give_consent")) if mod else None
        if fn is None:
            raise BdcError("The deep mode consent module is not installed in this build.")
        fn()

    def key_source(self, env_key: str) -> str | None:
        import os

        if os.environ.get(env_key):
            return "env"
        mod = _optional("bdc_assistant.keys")
        fn = _first_attr(mod, ("get_key", "resolve_key", "lookup")) if mod else None
        if fn is None:
            return None
        try:
            value = fn(env_key)
        except BdcError:
            return None
        if isinstance(value, tuple):  # (value, source)
            return str(value[1]) if value[0] else None
        return "keyring" if value else None

    def store_key(self, env_key: str, value: str) -> None:
        mod = _optional("bdc_assistant.keys")
        fn = _first_attr(mod, ("set_key", "store_key", "save_key")) if mod else None
        if fn is None:
            raise BdcError("The key store (bdc_assistant.keys) is not installed in this build.")
        fn(env_key, value)

    def deep_run(
        self, request: DeepRequest, on_progress: Callable[[DeepProgress], None], cancel: CancelToken
    ) -> DeepProgress:
        from .deep_adapter import run_deep

        return run_deep(self.settings, request, on_progress, cancel)

    # -- retraining --------------------------------------------------------------------------------
    def retrain_status(self) -> RetrainStatus:
        from .deep_adapter import count_trajectories

        active = None
        registry = _optional("bdc_assistant.disen.registry")
        fn = _first_attr(registry, ("active_bundle", "active")) if registry else None
        if fn is not None:
            try:
                got = fn()
                active = str(getattr(got, "name", got)) if got else None
            except BdcError:
                active = None
        return RetrainStatus(trajectories=count_trajectories(), gpu=gpu_present(), active_bundle=active)

    def retrain_command(self) -> list[str]:
        return [sys.executable, "-m", "bdc_assistant", "retrain"]

    def close(self) -> None:
        with self._lock:
            for obj in (self._solver, self._sandbox):
                closer = getattr(obj, "close", None)
                if closer:
                    try:
                        closer()
                    except Exception:  # noqa: BLE001 - closing must not mask the exit
                        pass
            self._solver = self._sandbox = None


def elapsed_since(start: float) -> float:
    return time.monotonic() - start
