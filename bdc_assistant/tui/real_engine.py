"""The real :class:`~.engine.Engine`: the local solver, the sandbox, deep mode and the bundle registry.

Every engine package is imported inside the method that needs it, and the app calls those methods from
thread workers, so the first frame never waits for torch or llama.cpp. A broken import of our own code
fails loudly in the worker (its traceback goes to the log, the screen shows one sentence).
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ..types import CancelToken, SolverEvent, TestCase, Verdict
from .engine import DeepProgress, DeepRequest, EngineInfo, Provider, RetrainStatus

if TYPE_CHECKING:
    from ..config import Settings
    from ..sandbox import Sandbox
    from ..solver.session import Solver


def preset_providers() -> list[Provider]:
    """The deep screen's provider choices: the presets of ``assets/providers.toml``, in file order."""
    from ..deep.providers.presets import load_presets

    return [
        Provider(p.name, p.key_env, tuple(p.models) or ("default",), p.base_url)
        for p in load_presets().values()
    ]


class RealEngine:
    """Adapts the real solver, sandbox, deep and bundle modules. Thread-safe warm-up; one solve at a time."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._solver: Solver | None = None
        self._sandbox: Sandbox | None = None
        self._lock = threading.Lock()
        self._solve_lock = threading.Lock()

    # -- local solver ------------------------------------------------------------------------------
    def _open_solver(self) -> Solver:
        with self._lock:
            if self._solver is None:
                from ..solver.session import open_solver

                self._solver = open_solver(self.settings, backend=None, bundle=None)
            return self._solver

    def warm_up(self) -> EngineInfo:
        solver = self._open_solver()
        info = solver.info()
        return EngineInfo(
            backend=str(info["backend"]),
            model=str(info["model"]),
            bundle=info.get("bundle"),
            state="ready",
            detail=str(info.get("bundle_note", "")),
            device=str(getattr(solver.generator, "device", "") or ""),  # only the torch generator has one
        )

    def solve(self, problem: str, cancel: CancelToken) -> Iterator[SolverEvent]:
        solver = self._open_solver()
        with self._solve_lock:  # one Llama object is not re-entrant
            yield from solver.solve(problem, cancel=cancel)

    # -- sandbox -----------------------------------------------------------------------------------
    def extract_examples(self, problem: str) -> list[TestCase]:
        from ..sandbox import extract_examples

        return list(extract_examples(problem))

    def run_tests(self, code: str, tests: Sequence[TestCase]) -> list[Verdict]:
        with self._lock:
            if self._sandbox is None:
                from ..sandbox import default_sandbox

                self._sandbox = default_sandbox()
            sandbox = self._sandbox
        return list(sandbox.run_tests(code, list(tests)))

    # -- deep mode ---------------------------------------------------------------------------------
    def deep_providers(self) -> list[Provider]:
        return preset_providers()

    def _base_urls(self, agents: Sequence[str]) -> list[str]:
        from ..deep.providers.presets import parse_agent

        return [parse_agent(a).base_url for a in agents]

    def consent_text(self, agents: Sequence[str]) -> str:
        from ..deep.consent import consent_text

        return consent_text(self._base_urls(agents))

    def has_consent(self, agents: Sequence[str]) -> bool:
        from ..deep.consent import has_consent
        from ..store.runs import RunStore

        store = RunStore()
        try:
            return has_consent(store, self._base_urls(agents))
        finally:
            store.close()

    def record_consent(self, agents: Sequence[str]) -> None:
        from ..deep.consent import record_consent
        from ..store.runs import RunStore

        store = RunStore()
        try:
            record_consent(store, self._base_urls(agents), scope="always")
        finally:
            store.close()

    def key_source(self, provider: str) -> str | None:
        from ..deep.providers.presets import provider_key

        got = provider_key(provider)
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
        from .. import bundles
        from ..backends.gpu import cuda_available

        entry = bundles.active_entry()
        return RetrainStatus(
            trajectories=bundles.count_trajectories(),
            gpu=cuda_available(),
            active_bundle=f"{entry.id} ({entry.source})" if entry is not None else None,
            new_since_active=bundles.new_trajectories_since_active(),
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
                if obj is not None:
                    with contextlib.suppress(Exception):  # closing must not mask the exit
                        obj.close()
            self._solver = self._sandbox = None
