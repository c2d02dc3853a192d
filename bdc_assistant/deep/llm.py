"""The LLM gateway of a deep run: budgets, the content-addressed response cache, retries, concurrency.

Budgets are *logical*: a cache hit counts as a call and costs what the cached response cost, so a resumed
or replayed run stops at exactly the same point as the original. A batch of calls (one per policy) is
reserved as a whole before anything is sent, using a worst case per call (UTF-8 bytes of the prompt as
input tokens plus overhead, ``max_tokens`` as output), so ``--max-calls``, ``--budget-usd`` and the
token cap can never be exceeded, whatever the providers answer. Calls of a batch run concurrently (a
semaphore per provider); results come back in policy order, so concurrency never changes the tree.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlparse, urlunparse

from ..store.runs import RunStore
from ..types import CancelToken
from . import events as ev
from .providers.base import ChatRequest, ChatResponse, Provider, ProviderFailure
from .providers.presets import AgentSpec
from .providers.retry import with_retries
from .search import StopSearch


@dataclass(frozen=True)
class Budgets:
    max_calls: int = 60
    budget_usd: float = 1.0
    max_tokens_total: int = 0  # 0 = no cap
    wall_clock_s: float = 0.0  # 0 = no cap


@dataclass(frozen=True)
class Call:
    agent: str
    phase: str  # propose | solve | summarise | regenerate | testgen | distinguish
    request: ChatRequest
    sample: int = 0


@dataclass
class AgentTally:
    calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    spend_usd: float = 0.0
    cache_hits: int = 0


@dataclass
class Meter:
    calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    spend_usd: float = 0.0
    api_calls: int = 0  # real network responses (cache misses)
    cache_hits: int = 0
    retries: int = 0
    parse_failures: int = 0
    elapsed_s: float = 0.0  # search wall time over all sessions of the run
    per_agent: dict[str, AgentTally] = field(default_factory=dict)
    per_phase: dict[str, int] = field(default_factory=dict)

    def snapshot(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def restore(cls, data: dict[str, Any] | None) -> Meter:
        if not data:
            return cls()
        data = dict(data)
        data["per_agent"] = {k: AgentTally(**v) for k, v in data.get("per_agent", {}).items()}
        return cls(**data)


def worst_case_tokens_in(request: ChatRequest) -> int:
    """An upper bound on prompt tokens: every token is at least one UTF-8 byte, plus template overhead."""
    return sum(len(c.encode()) + len(r) + 16 for r, c in request.messages) + 32


def cache_key(agent: AgentSpec, request: ChatRequest, sample: int) -> str:
    payload = {
        "v": 1,
        "kind": agent.kind,
        "endpoint": _clean_url(agent.base_url),
        "request": request.canonical(),
        "sample": sample,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _clean_url(url: str) -> str:
    """The endpoint without credentials, query or fragment (a key pasted into a URL must not reach the key)."""
    p = urlparse(url)
    netloc = p.hostname or ""
    if p.port:
        netloc += f":{p.port}"
    return urlunparse((p.scheme, netloc, p.path.rstrip("/"), "", "", ""))


@dataclass
class PhaseCost:
    """What :meth:`Gateway.reserve` priced the calls of one phase at, summed: their count, worst-case prompt
    tokens, worst-case tokens in all (prompt + output cap) and worst-case dollars."""

    calls: int = 0
    prompt: float = 0.0
    tokens: float = 0.0
    usd: float = 0.0

    def add(self, prompt: float, max_out: int, usd: float) -> None:
        self.calls, self.prompt, self.tokens = (
            self.calls + 1,
            self.prompt + prompt,
            self.tokens + prompt + max_out,
        )
        self.usd += usd

    def merge(self, other: PhaseCost) -> None:
        self.calls, self.prompt = self.calls + other.calls, self.prompt + other.prompt
        self.tokens, self.usd = self.tokens + other.tokens, self.usd + other.usd

    @property
    def usd_per_token(self) -> float:
        return self.usd / self.tokens if self.tokens else 0.0


class Gateway:
    def __init__(
        self,
        agents: Sequence[AgentSpec],
        providers: dict[str, Provider],
        store: RunStore,
        meter: Meter,
        budgets: Budgets,
        *,
        timeout_s: float = 120.0,
        max_retries: int = 4,
        emit: Callable[[ev.DeepEvent], None] = lambda e: None,
        cancel: CancelToken | None = None,
        sleep: Callable[[float], None] | None = None,
        replay_only: bool = False,
        max_concurrency: int | None = None,
        should_stop: Callable[[], str | None] = lambda: None,
    ) -> None:
        self.agents = {a.name: a for a in agents}
        self.providers = providers
        self.store = store
        self.meter = meter
        self.budgets = budgets
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.emit = emit
        self.cancel = cancel
        self.replay_only = replay_only
        self.should_stop = should_stop  # wall clock / cancel, checked before every batch
        self._sleep = sleep
        self._sems = {a.name: _shared_semaphore(a, max_concurrency) for a in agents}
        self._pool = ThreadPoolExecutor(max_workers=max(4, len(agents) * 2), thread_name_prefix="bdc-llm")
        self._lock = threading.Lock()
        self._reserved: dict[str, PhaseCost] = {}  # worst cases reserve() priced so far, per phase

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    # ---- budgets ------------------------------------------------------------------------------------

    def reserve(self, calls: Sequence[Call]) -> None:
        """Refuse the whole batch (StopSearch) if its worst case could pass any cap."""
        if self.cancel is not None and self.cancel.cancelled:
            raise StopSearch("cancelled")
        reason = self.should_stop()
        if reason:
            raise StopSearch(reason)
        m, b = self.meter, self.budgets
        if m.calls + len(calls) > b.max_calls:
            raise StopSearch("max_calls", f"{m.calls} calls made, the next batch needs {len(calls)}")
        worst_tokens = worst_cost = 0.0
        for c in calls:
            tokens_in = worst_case_tokens_in(c.request)
            cost = self.agents[c.agent].price.cost(tokens_in, c.request.max_tokens)
            self._reserved.setdefault(c.phase, PhaseCost()).add(tokens_in, c.request.max_tokens, cost)
            worst_tokens += tokens_in + c.request.max_tokens
            worst_cost += cost
        if b.max_tokens_total and m.tokens_in + m.tokens_out + worst_tokens > b.max_tokens_total:
            raise StopSearch("max_tokens", f"{m.tokens_in + m.tokens_out} tokens used")
        if m.spend_usd + worst_cost > b.budget_usd + 1e-12:
            raise StopSearch(
                "budget_usd", f"${m.spend_usd:.4f} spent, the next batch could cost ${worst_cost:.4f}"
            )

    def affords(self, calls: Sequence[tuple[str, int]]) -> bool:
        """Whether calls of these (phase, output cap) fit the budgets: the call cap exactly; the token and
        dollar caps by the mean worst case :meth:`reserve` has priced that phase at in this run (later prompts
        are the size of the run's earlier ones of the same phase); a phase not seen yet is priced at the mean
        prompt of the run plus its output cap, at the run's mean dollars per token. Before the first call
        only the call cap counts."""
        m, b = self.meter, self.budgets
        if m.calls + len(calls) > b.max_calls:
            return False
        if not self._reserved:
            return True
        run = PhaseCost()
        for priced in self._reserved.values():
            run.merge(priced)
        need_tokens = need_usd = 0.0
        for phase, max_out in calls:
            seen = self._reserved.get(phase)
            tokens = seen.tokens / seen.calls if seen else run.prompt / run.calls + max_out
            need_tokens += tokens
            need_usd += seen.usd / seen.calls if seen else run.usd_per_token * tokens
        if b.max_tokens_total and m.tokens_in + m.tokens_out + need_tokens > b.max_tokens_total:
            return False
        return m.spend_usd + need_usd <= b.budget_usd + 1e-12

    # ---- calls --------------------------------------------------------------------------------------

    def batch(self, calls: Sequence[Call]) -> list[ChatResponse]:
        self.reserve(calls)
        futures = [self._pool.submit(self._one, c) for c in calls]
        results: list[tuple[ChatResponse, bool] | BaseException] = []
        for f in futures:
            try:
                results.append(f.result())
            except BaseException as exc:  # collect, account the successes, then fail
                results.append(exc)
        out: list[ChatResponse] = []
        failure: BaseException | None = None
        for call, res in zip(calls, results, strict=True):
            if isinstance(res, BaseException):
                failure = failure or res
                continue
            resp, cached = res
            self._account(call, resp, cached)
            out.append(resp)
        if failure is not None:
            if isinstance(failure, ProviderFailure):
                reason = {"cancelled": "cancelled", "not_cached": "replay_miss"}.get(
                    failure.kind, f"provider_{failure.kind}"
                )
                raise StopSearch(reason, str(failure)) from failure
            raise failure
        return out

    def _account(self, call: Call, resp: ChatResponse, cached: bool) -> None:
        agent = self.agents[call.agent]
        cost = agent.price.cost(resp.tokens_in, resp.tokens_out)
        m = self.meter
        m.calls += 1
        m.tokens_in += resp.tokens_in
        m.tokens_out += resp.tokens_out
        m.spend_usd += cost
        m.cache_hits += int(cached)
        m.api_calls += int(not cached)
        tally = m.per_agent.setdefault(call.agent, AgentTally())
        tally.calls += 1
        tally.tokens_in += resp.tokens_in
        tally.tokens_out += resp.tokens_out
        tally.spend_usd += cost
        tally.cache_hits += int(cached)
        m.per_phase[call.phase] = m.per_phase.get(call.phase, 0) + 1
        self.emit(
            ev.Spend(
                agent=call.agent,
                phase=call.phase,
                calls=m.calls,
                tokens_in=m.tokens_in,
                tokens_out=m.tokens_out,
                spend_usd=m.spend_usd,
                cached=cached,
            )
        )

    def _one(self, call: Call) -> tuple[ChatResponse, bool]:
        agent = self.agents[call.agent]
        key = cache_key(agent, call.request, call.sample)
        with self._lock:
            hit = self.store.cache_get(key)
        if hit is not None:
            return ChatResponse(**hit), True
        if self.replay_only:
            raise ProviderFailure(
                "not_cached", f"replay: no cached response for a {call.phase} call of {agent.name}"
            )
        provider = self.providers[call.agent]

        def attempt() -> ChatResponse:
            if self.cancel is not None and self.cancel.cancelled:
                raise ProviderFailure("cancelled", "cancelled")
            with self._sems[call.agent]:
                return provider.complete(call.request, self.timeout_s)

        def on_retry(n: int, exc: ProviderFailure, delay: float) -> None:
            with self._lock:
                self.meter.retries += 1

        kwargs: dict[str, Any] = {"max_retries": self.max_retries, "on_retry": on_retry}
        if self._sleep is not None:
            kwargs["sleep"] = self._sleep
        resp = with_retries(attempt, **kwargs)
        with self._lock:
            self.store.cache_put(
                key,
                provider=agent.kind,
                base_url=_clean_url(agent.base_url),
                model=agent.model,
                request=call.request.canonical() | {"sample": call.sample},
                response=asdict(resp),
                tokens_in=resp.tokens_in,
                tokens_out=resp.tokens_out,
                cost_usd=agent.price.cost(resp.tokens_in, resp.tokens_out),
            )
            # the stored (scrubbed) response is the one every replay sees: use it now too
            stored = self.store.cache_get(key)
        return (ChatResponse(**stored) if stored else resp), False


_SEMS: dict[tuple[str, str, int], threading.Semaphore] = {}
_SEMS_LOCK = threading.Lock()


def _shared_semaphore(agent: AgentSpec, cap: int | None = None) -> threading.Semaphore:
    """One semaphore per provider endpoint (and cap), shared by all agents and runs of this process."""
    size = max(1, min(agent.concurrency, cap) if cap else agent.concurrency)
    key = (agent.kind, _clean_url(agent.base_url), size)
    with _SEMS_LOCK:
        if key not in _SEMS:
            _SEMS[key] = threading.Semaphore(size)
        return _SEMS[key]
