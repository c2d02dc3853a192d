"""Deep mode's engine API: one problem, several LLM agents, MC-Tree-of-Agents, everything logged.

Usage (the CLI and the TUI both do exactly this)::

    runner = DeepRunner()                       # store = app DB, evaluator = the sandbox, real providers
    result = runner.run(problem, ["openai:http://127.0.0.1:8080/v1:gemma", "anthropic::claude-3-5-haiku-20241022"],
                        Budgets(max_calls=40, budget_usd=0.5), on_event=print, cancel=CancelToken())
    result.as_json()   # {"best_code", "public_pass_rate", "nodes", "pruned", "refined", "calls", "run_id", "stopped_by"}
    runner.resume(run_id)                       # after a crash or kill -9: continues from the last rollout

``on_event`` receives the frozen dataclasses of :mod:`.events` (node added / simulated / pruned / refined,
rollout done, spend, finished) on the calling thread, in a deterministic order. ``cancel`` stops the run
at the next call or rollout boundary with ``stopped_by="cancelled"`` (the run stays resumable).

Guarantees: consent must be on record before anything is sent (:mod:`bdc_assistant.consent`); only the
problem's public tests reach the search; keys are scrubbed from everything stored; the run is
checkpointed after every rollout, so ``resume`` loses and duplicates nothing and, with the response cache,
ends with the same result as an uninterrupted run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from .. import keys as keymod
from ..backends.base import CancelToken
from ..config import DeepSettings
from ..consent import has_consent
from ..errors import ConsentError, DatasetError, ProviderError, StoreError
from ..store.runs import RunStore, new_run_id, pid_alive
from ..types import Problem, TestCase
from . import events as ev
from .agents import LLMTeam, prompts_version
from .llm import Budgets, Gateway, Meter
from .providers.base import Provider
from .providers.presets import AgentSpec, parse_agent, unique_names
from .search import Evaluator, PublicProblem, Search, SearchConfig, StopSearch
from .tree import Tree

EvaluatorFactory = Callable[[PublicProblem], Evaluator]
ProviderFactory = Callable[[AgentSpec, "str | None"], Provider]


@dataclass(frozen=True)
class DeepResult:
    run_id: str
    best_code: str
    public_pass_rate: float
    nodes: int
    pruned: int
    refined: int
    calls: int
    stopped_by: str
    detail: str = ""
    best_node: int | None = None
    spend_usd: float = 0.0
    tokens_in: int = 0
    tokens_out: int = 0
    meter: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """The CLI contract's final line."""
        return {
            "best_code": self.best_code,
            "public_pass_rate": self.public_pass_rate,
            "nodes": self.nodes,
            "pruned": self.pruned,
            "refined": self.refined,
            "calls": self.calls,
            "run_id": self.run_id,
            "stopped_by": self.stopped_by,
        }


def default_provider(agent: AgentSpec, key: str | None) -> Provider:
    if agent.kind == "anthropic":
        from .providers.anthropic_msgs import AnthropicProvider

        return AnthropicProvider(agent.base_url, key)
    from .providers.openai_compat import OpenAICompatProvider, OpenAICompletionProvider

    if agent.kind == "openai_completion":
        return OpenAICompletionProvider(agent.base_url, key)
    return OpenAICompatProvider(agent.base_url, key)


def default_evaluator(problem: PublicProblem) -> Evaluator:
    from ..sandbox import default_sandbox
    from .evaluate import SandboxEvaluator

    return SandboxEvaluator(default_sandbox(), problem)


def public_view(problem: Problem | PublicProblem) -> PublicProblem:
    """Drop everything the search must not see (private tests, reference solution)."""
    if isinstance(problem, PublicProblem):
        return problem
    return PublicProblem(
        id=problem.id,
        statement=problem.statement,
        public_tests=tuple(problem.public_tests),
        entry_point=problem.entry_point,
        kind=problem.kind,
        starter_code=problem.starter_code,
        checker=problem.checker,
    )


def search_config(s: DeepSettings, **overrides: Any) -> SearchConfig:
    base = {k: getattr(s, k) for k in SearchConfig.__dataclass_fields__}
    base.update(overrides)
    return SearchConfig(**base)


def _problem_json(p: PublicProblem) -> dict[str, Any]:
    return asdict(p)


def _problem_from_json(d: dict[str, Any]) -> PublicProblem:
    tests = tuple(TestCase(**t) for t in d["public_tests"])
    return PublicProblem(**(d | {"public_tests": tests}))


class DeepRunner:
    def __init__(
        self,
        *,
        store: RunStore | None = None,
        settings: DeepSettings | None = None,
        evaluator_factory: EvaluatorFactory = default_evaluator,
        provider_factory: ProviderFactory = default_provider,
        key_lookup: Callable[[str], tuple[str, str] | None] = keymod.get_key,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        if settings is None:
            from ..config import load_settings

            settings = load_settings().deep
        self.settings = settings
        self.store = store or RunStore()
        self.evaluator_factory = evaluator_factory
        self.provider_factory = provider_factory
        self.key_lookup = key_lookup
        self.sleep = sleep

    # ---- public API ---------------------------------------------------------------------------------

    def run(
        self,
        problem: Problem | PublicProblem,
        agents: Sequence[AgentSpec | str],
        budgets: Budgets | None = None,
        on_event: Callable[[ev.DeepEvent], None] | None = None,
        cancel: CancelToken | None = None,
        *,
        config: SearchConfig | None = None,
        run_id: str | None = None,
        generate_tests: int | None = None,
    ) -> DeepResult:
        specs = unique_names([a if isinstance(a, AgentSpec) else parse_agent(a) for a in agents])
        if not specs:
            raise ProviderError("Deep mode needs at least one agent (--agent PROVIDER:URL:MODEL).")
        pub = public_view(problem)
        n_gen = self.settings.generate_tests if generate_tests is None else generate_tests
        if not pub.public_tests and not n_gen:
            raise DatasetError(
                "Deep mode needs at least one public test: pass --tests FILE, put examples in the statement, "
                "or ask for generated tests."
            )
        run_id = run_id or new_run_id()
        self._require_consent(specs, run_id)
        budgets = budgets or Budgets(
            max_calls=self.settings.max_calls,
            budget_usd=self.settings.budget_usd,
            max_tokens_total=self.settings.max_tokens_total,
            wall_clock_s=self.settings.wall_clock_s,
        )
        config = config or search_config(self.settings)
        redactor, providers = self._providers(specs)
        self.store.scrub = redactor.scrub
        run_conf = {
            "search": asdict(config),
            "budgets": asdict(budgets),
            "llm": {
                "temperature": self.settings.temperature,
                "max_output_tokens": self.settings.max_output_tokens,
                "timeout_s": self.settings.timeout_s,
                "max_retries": self.settings.max_retries,
            },
            "generate_tests": n_gen,
            "prompts_version": prompts_version(),
        }
        self.store.create_run(run_id, _problem_json(pub), run_conf, [_agent_json(a) for a in specs])
        return self._execute(
            run_id, pub, specs, providers, run_conf, config, budgets, None, Meter(), on_event, cancel
        )

    def resume(
        self,
        run_id: str,
        on_event: Callable[[ev.DeepEvent], None] | None = None,
        cancel: CancelToken | None = None,
    ) -> DeepResult:
        row = self.store.get_run(run_id)
        if row.status == "finished":
            raise StoreError(
                f"Run {run_id} already finished (stopped by {row.stopped_by}); nothing to resume."
            )
        if pid_alive(row.pid):
            raise StoreError(f"Run {run_id} is still running in process {row.pid}.")
        specs = [AgentSpec(**(a | {"price": _price(a["price"])})) for a in row.agents]
        self._require_consent(specs, run_id)
        redactor, providers = self._providers(specs)
        self.store.scrub = redactor.scrub
        self.store.claim(run_id)
        conf = row.config
        config = SearchConfig(**conf["search"])
        budgets = Budgets(**conf["budgets"])
        tree = Tree.from_json(row.checkpoint) if row.checkpoint else None
        meter = Meter.restore(row.meter)
        pub = _problem_from_json(row.problem)
        return self._execute(
            run_id, pub, specs, providers, conf, config, budgets, tree, meter, on_event, cancel, resumed=True
        )

    def replay(
        self, run_id: str, on_event: Callable[[ev.DeepEvent], None] | None = None
    ) -> tuple[DeepResult, bool]:
        """Re-run a stored run from the response cache only (nothing is sent; a cache miss ends the replay
        with ``stopped_by="replay_miss"``). Returns the new run's result and whether its tree is identical
        to the original's."""
        row = self.store.get_run(run_id)
        specs = [AgentSpec(**(a | {"price": _price(a["price"])})) for a in row.agents]
        conf = row.config
        pub = _problem_from_json(row.problem)
        pub = replace(pub, public_tests=tuple(t for t in pub.public_tests if t.origin != "generated"))
        new_id = new_run_id() + "-replay"
        self.store.create_run(new_id, _problem_json(pub), conf | {"replay_of": run_id}, row.agents)
        result = self._execute(
            new_id,
            pub,
            specs,
            {},
            conf,
            SearchConfig(**conf["search"]),
            Budgets(**conf["budgets"]),
            None,
            Meter(),
            on_event,
            None,
            replay_only=True,
        )
        original = row.checkpoint
        again = self.store.get_run(new_id).checkpoint
        return result, original is not None and original == again

    # ---- internals ----------------------------------------------------------------------------------

    def _require_consent(self, specs: Sequence[AgentSpec], run_id: str) -> None:
        if not has_consent(self.store, [a.base_url for a in specs], run_id):
            raise ConsentError(
                "Deep mode has no recorded consent for these providers; run `bdc deep` in a terminal to be "
                "asked, or add --yes."
            )

    def _providers(self, specs: Sequence[AgentSpec]) -> tuple[keymod.Redactor, dict[str, Provider]]:
        redactor = keymod.Redactor()
        providers: dict[str, Provider] = {}
        for a in specs:
            found = self.key_lookup(a.preset)
            key = found[0] if found else None
            if key is None and a.key_required:
                env = " or ".join(keymod.env_names(a.preset))
                raise ProviderError(f"No API key for {a.preset}: run `bdc keys set {a.preset}` or set {env}.")
            redactor.add(key)
            providers[a.name] = self.provider_factory(a, key)
        return redactor, providers

    def _execute(
        self,
        run_id: str,
        pub: PublicProblem,
        specs: Sequence[AgentSpec],
        providers: dict[str, Provider],
        conf: dict[str, Any],
        config: SearchConfig,
        budgets: Budgets,
        tree: Tree | None,
        meter: Meter,
        on_event: Callable[[ev.DeepEvent], None] | None,
        cancel: CancelToken | None,
        resumed: bool = False,
        replay_only: bool = False,
    ) -> DeepResult:
        buffer: list[tuple[float, int | None, str, int | None, dict[str, Any]]] = []
        sink = on_event or (lambda e: None)
        current_rollout = [tree.rollout if tree else 0]

        def emit(event: ev.DeepEvent) -> None:
            if isinstance(event, ev.RolloutDone):
                event = replace(event, calls=gateway.meter.calls, spend_usd=gateway.meter.spend_usd)
            payload = asdict(event)
            rollout = payload.get("rollout", current_rollout[0])
            node_id = payload.get("node_id", payload.get("new_node_id"))
            buffer.append((time.time(), rollout, type(event).__name__, node_id, payload))
            sink(event)

        gateway = Gateway(
            specs,
            providers,
            self.store,
            meter,
            budgets,
            timeout_s=conf["llm"]["timeout_s"],
            max_retries=conf["llm"]["max_retries"],
            emit=emit,
            cancel=cancel,
            sleep=self.sleep,
            max_concurrency=self.settings.concurrency,
            replay_only=replay_only,
            should_stop=lambda: check_stop(),
        )
        team = LLMTeam(
            gateway,
            [a.name for a in specs],
            max_tokens=conf["llm"]["max_output_tokens"],
            temperature=conf["llm"]["temperature"],
        )
        session_start = time.monotonic()
        base_elapsed = meter.elapsed_s

        def elapsed() -> float:
            return base_elapsed + (time.monotonic() - session_start)

        def check_stop() -> str | None:
            if cancel is not None and cancel.cancelled:
                return "cancelled"
            if budgets.wall_clock_s and elapsed() >= budgets.wall_clock_s:
                return "wall_clock"
            return None

        def checkpoint(t: Tree) -> None:
            meter.elapsed_s = elapsed()
            current_rollout[0] = t.rollout
            self.store.checkpoint(run_id, t.to_json(), meter.snapshot(), list(buffer))
            buffer.clear()

        sink(
            ev.RunStarted(
                run_id=run_id, problem_id=pub.id, agents=tuple(a.name for a in specs), resumed=resumed
            )
        )
        status = "failed"
        try:
            stop: StopSearch | None = None
            has_generated = any(t.origin == "generated" for t in pub.public_tests)
            if conf.get("generate_tests") and tree is None and not has_generated:
                try:
                    pub = self._generated_tests(run_id, pub, team, specs[0].name, conf["generate_tests"])
                except StopSearch as exc:
                    stop = exc
            if stop is None and not pub.public_tests:
                stop = StopSearch("no_tests", "no public test could be obtained")
            search = Search(
                pub,
                team,
                self.evaluator_factory(pub) if stop is None else _NullEvaluator(),
                config,
                emit=emit,
                on_checkpoint=checkpoint,
                check_stop=check_stop,
            )
            if tree is not None:
                search.tree = tree
            outcome = search.run() if stop is None else search._outcome(stop.reason, stop.detail)
            status = "finished"
        finally:
            gateway.close()
            if status != "finished":
                # an unexpected error: keep what was checkpointed, leave the run resumable
                self.store.conn.execute(
                    "UPDATE deep_runs SET pid = NULL, status = 'failed' WHERE run_id = ?", (run_id,)
                )
        meter.elapsed_s = elapsed()
        t = outcome.tree
        result = DeepResult(
            run_id=run_id,
            best_code=outcome.best_code,
            public_pass_rate=outcome.public_pass_rate,
            nodes=len(t.nodes),
            pruned=t.pruned_total,
            refined=t.refines_total,
            calls=meter.calls,
            stopped_by=outcome.stopped_by,
            detail=self.store.scrub(outcome.detail),
            best_node=outcome.best_node,
            spend_usd=meter.spend_usd,
            tokens_in=meter.tokens_in,
            tokens_out=meter.tokens_out,
            meter=meter.snapshot(),
        )
        finished = ev.Finished(run_id, result.stopped_by, result.public_pass_rate, result.as_json())
        emit(finished)
        # cancelled runs stay resumable; every other stop is final
        final_status = "running" if outcome.stopped_by == "cancelled" else "finished"
        full = result.as_json() | {
            "detail": result.detail,
            "best_node": result.best_node,
            "spend_usd": result.spend_usd,
            "tokens_in": result.tokens_in,
            "tokens_out": result.tokens_out,
        }
        self.store.finish(
            run_id,
            status=final_status,
            stopped_by=result.stopped_by,
            result=full,
            tree=t.to_json(),
            meter=meter.snapshot(),
            events=list(buffer),
        )
        buffer.clear()
        return result

    def _generated_tests(
        self, run_id: str, pub: PublicProblem, team: LLMTeam, agent: str, count: int
    ) -> PublicProblem:
        generated = team.generate_tests(agent, pub, count)
        pub = replace(pub, public_tests=tuple(pub.public_tests) + tuple(generated))
        with self.store._tx() as c:  # tests and the meter that paid for them, together
            c.execute(
                "UPDATE deep_runs SET problem_json = ?, meter_json = ? WHERE run_id = ?",
                (
                    self.store._dump(_problem_json(pub)),
                    self.store._dump(team.gateway.meter.snapshot()),
                    run_id,
                ),
            )
        return pub


class _NullEvaluator:
    def evaluate(self, code: str):  # type: ignore[no-untyped-def]
        raise AssertionError("no evaluation without tests")

    def trace(self, code: str, failure: object) -> str:
        return ""


def _agent_json(a: AgentSpec) -> dict[str, Any]:
    return asdict(a)


def _price(p: dict[str, float]):  # type: ignore[no-untyped-def]
    from .providers.presets import Price

    return Price(**p)
