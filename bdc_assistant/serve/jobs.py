"""What one request does on one model instance, run in a worker thread: customize, generate, stream.

Two jobs:

- :func:`solve_job` (chat): the app's two-stage solver on the problem (the last user message) — its gates
  come from that text — rendered as Markdown like ``bdc ask``.
- :func:`complete_job` (completions): raw continuation of the prompt on the customized base, gates from
  the prompt text.

Both push :class:`Begin`, :class:`Delta`… and one :class:`End` through ``emit`` and check the
:class:`CancelToken` once per token (the backends do), so a client that goes away stops generation at the
next token. ``max_tokens`` and ``stop`` are applied here to what the client sees, which is why a
cancellation can also mean "length" or "stop": :attr:`End.finish_reason` tells them apart.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..backends.base import CancelToken, GenerationParams
from ..backends.streaming import StopStream
from ..types import Answer, CodeToken, Started, ThoughtToken
from .render import MarkdownRenderer, bdc_field


@dataclass(frozen=True)
class Sampling:
    """The per-request knobs an OpenAI client can set (None = the app's settings)."""

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None


@dataclass(frozen=True)
class Begin:
    bdc: dict[str, Any]
    prompt_tokens: int


@dataclass(frozen=True)
class Delta:
    text: str


@dataclass(frozen=True)
class End:
    finish_reason: str  # "stop" | "length" | "cancelled"
    prompt_tokens: int
    completion_tokens: int
    bdc: dict[str, Any] = field(default_factory=dict)
    ttft_s: float | None = None


Item = Begin | Delta | End
Emit = Callable[[Item], None]


def _settings_for(solver: Any, sampling: Sampling) -> Any:
    """The solver's settings with this request's temperature / top_p / seed (the solver reads them there)."""
    settings = solver.settings
    solver_update: dict[str, Any] = {}
    if sampling.temperature is not None:
        solver_update["temperature"] = sampling.temperature
    if sampling.top_p is not None:
        solver_update["top_p"] = sampling.top_p
    update: dict[str, Any] = {}
    if solver_update:
        update["solver"] = settings.solver.model_copy(update=solver_update)
    if sampling.seed is not None:
        update["backend"] = settings.backend.model_copy(update={"seed": sampling.seed})
    return settings.model_copy(update=update) if update else settings


def _count(generator: Any, text: str) -> int:
    try:
        return int(generator.count_tokens(text))
    except Exception:  # a count is a courtesy in `usage`; never fail an answer over it
        return 0


def solve_job(
    solver: Any,
    problem: str,
    sampling: Sampling,
    cancel: CancelToken,
    emit: Emit,
    on_token: Callable[[], None] = lambda: None,
) -> None:
    """Answer ``problem`` with the two-stage solver, streaming Markdown (plan, then fenced code)."""
    local = copy.copy(solver)  # shares the loaded model; only this request's sampling settings differ
    local.settings = _settings_for(solver, sampling)
    cap = sampling.max_tokens
    thought_cap = min(local.settings.solver.thought_tokens, cap) if cap else None
    prompt_tokens = _count(solver.generator, problem)
    renderer = MarkdownRenderer()
    stopper = StopStream(sampling.stop)
    t0 = time.perf_counter()
    ttft: float | None = None
    started: Started | None = None
    answer: Answer | None = None
    count = 0
    finish: str | None = None

    def send(text: str) -> None:
        nonlocal finish, ttft
        if not text or finish == "stop":
            return
        out = stopper.feed(text)
        if out:
            if ttft is None:
                ttft = time.perf_counter() - t0
            emit(Delta(out))
        if stopper.stopped:
            finish = "stop"
            cancel.cancel()

    for ev in local.solve(problem, cancel=cancel, max_tokens=cap, thought_tokens=thought_cap):
        if isinstance(ev, Started):
            started = ev
            emit(Begin(bdc_field(ev, bundle_note=solver.bundle_note), prompt_tokens))
            continue
        if isinstance(ev, Answer):
            answer = ev
            continue
        if isinstance(ev, ThoughtToken | CodeToken) and ev.text and finish is None:
            count += 1
            on_token()
        send(renderer.feed(ev))
        if cap is not None and count >= cap and finish is None:
            finish = "length"
            cancel.cancel()
    if finish != "stop":
        send(renderer.finish())
        tail = stopper.finish()
        if tail:
            emit(Delta(tail))
    if finish is None:
        finish = "cancelled" if cancel.cancelled else "stop"
    final = bdc_field(started, bundle_note=solver.bundle_note, answer=answer)
    # The solver's own count excludes the text its prompts put in the answer (the plan's "1.", a stub).
    emit(End(finish, prompt_tokens, answer.tokens if answer is not None else count, final, ttft))


def complete_job(
    solver: Any,
    prompt: str,
    sampling: Sampling,
    cancel: CancelToken,
    emit: Emit,
    on_token: Callable[[], None] = lambda: None,
) -> None:
    """Continue ``prompt`` verbatim on the base customized for it (OpenAI ``/v1/completions``)."""
    generator = solver.generator
    s = solver.settings
    t0 = time.perf_counter()
    gates = None
    if solver.customizer is None:
        generator.set_customization(None)
    else:
        custom = solver.customizer.for_query(prompt)
        generator.set_customization(custom)
        gates = custom.gates
    setup_ms = (time.perf_counter() - t0) * 1e3
    started = Started(generator.name, generator.model_id, solver.bundle_name, gates, setup_ms)
    prompt_tokens = _count(generator, prompt)
    # The first chunk (role + gates) goes out with the first token, not before the prompt is evaluated: on a
    # small machine, encoding and sending it (and the client parsing it) competes with the prompt evaluation.
    begin: Begin | None = Begin(bdc_field(started, bundle_note=solver.bundle_note), prompt_tokens)
    params = GenerationParams(
        max_tokens=sampling.max_tokens or s.solver.max_tokens,
        temperature=s.solver.temperature if sampling.temperature is None else sampling.temperature,
        top_p=s.solver.top_p if sampling.top_p is None else sampling.top_p,
        stop=sampling.stop,
        seed=s.backend.seed if sampling.seed is None else sampling.seed,
    )
    count = 0
    ttft: float | None = None
    gen_t0 = time.perf_counter()
    for piece in generator.generate(prompt, params, cancel):
        if not piece:
            continue
        if ttft is None:
            ttft = time.perf_counter() - t0
        if begin is not None:
            emit(begin)
            begin = None
        count += 1
        on_token()
        emit(Delta(piece))
    if begin is not None:  # no token at all (cancelled, or an immediate stop)
        emit(begin)
    seconds = time.perf_counter() - gen_t0
    finish = "cancelled" if cancel.cancelled else "length" if count >= params.max_tokens else "stop"
    final = bdc_field(started, bundle_note=solver.bundle_note)
    final.update(
        tokens=count, seconds=round(seconds, 3), tokens_per_s=round(count / seconds, 2) if seconds else 0.0
    )
    emit(End(finish, prompt_tokens, count, final, ttft))
