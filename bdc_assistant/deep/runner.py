"""Deep mode's engine API: one problem, several LLM agents, MC-Tree-of-Agents, everything logged.

Usage (the CLI and the TUI both do exactly this)::

    runner = DeepRunner()                       # store = app DB, evaluator = the sandbox, real providers
    result = runner.run(problem, ["openai:http://127.0.0.1:8080/v1:gemma", "anthropic::claude-3-5-haiku-20241022"],
                        Budgets(max_calls=40, budget_usd=0.5), on_event=print, cancel=CancelToken())
    result.as_json()   # {"best_code", "public_pass_rate", "nodes", "pruned", "refined", "calls", "run_id", "stopped_by"}
    runner.resume(run_id)                       # after a crash or kill -9: continues from the last rollout

With ``pick = "sstar"`` (settings or ``run(pick=...)``) the search keeps one call of ``max_calls`` back for
the S*-style final pick (:mod:`.pick`): when distinct programs tie at the best public pass rate, one agent
is asked for distinguishing inputs and the largest behaviour cluster wins. ``pick(...)`` does the same
over candidates gathered from several runs (``bdc deep-bench``'s resampled attempts).

``on_event`` receives the frozen dataclasses of :mod:`.events` (node added / simulated / pruned / refined,
rollout done, spend, finished) on the calling thread, in a deterministic order. ``cancel`` stops the run
at the next call or rollout boundary with ``stopped_by="cancelled"`` (the run stays resumable).

Guarantees: consent must be on record before anything is sent (:mod:`.consent`); only the
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
from ..config import DeepSettings
from ..errors import ConsentError, DatasetError, ProviderError, StoreError
from ..store.runs import RunRow, RunStore, new_run_id, pid_alive
from ..types import CancelToken, Problem, TestCase
from . import events as ev
from .agents import LLMTeam, prompts_version
from .consent import has_consent
from .llm import Budgets, Gateway, Meter
from .methods import make_search
from .pick import Candidate, Pick, PickMode, find_ties, first_pick, sstar, tree_candidates
from .providers.base import Provider
from .providers.presets import AgentSpec, Price, key_envs, parse_agent, provider_key, unique_names
from .search import Evaluator, PublicProblem, SearchConfig, SearchOutcome, StopSearch
from .statement_view import visible_statement
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
    pick: dict[str, Any] = field(default_factory=dict)  # how the final program was chosen (Pick.as_record)
    tree: Tree | None = field(default=None, repr=False, compare=False)  # the final tree, not serialised

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

    def as_record(self) -> dict[str, Any]:
        """What the store keeps as the run's result."""
        return self.as_json() | {
            "detail": self.detail,
            "best_node": self.best_node,
            "spend_usd": self.spend_usd,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "pick": self.pick,
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
    """Drop everything the search must not see (private tests, reference solution); cut statement lines
    too long to be read (:mod:`.statement_view`)."""
    if isinstance(problem, PublicProblem):
        return replace(problem, statement=visible_statement(problem.statement))
    return PublicProblem(
        id=problem.id,
        statement=visible_statement(problem.statement),
        public_tests=tuple(problem.public_tests),
        entry_point=problem.entry_point,
        kind=problem.kind,
        starter_code=problem.starter_code,
        checker=problem.checker,
    )


def search_config(s: DeepSettings, **overrides: Any) -> SearchConfig:
    """The settings' search fields; fields the settings do not have (the baselines' ``method``, ``beam``,
    ...) keep SearchConfig's defaults unless overridden."""
    base = {k: getattr(s, k) for k in SearchConfig.__dataclass_fields__ if hasattr(s, k)}
    base.update(overrides)
    return SearchConfig(**base)


class DeepRunner:
    def __init__(
        self,
        *,
        store: RunStore | None = None,
        settings: DeepSettings | None = None,
        evaluator_factory: EvaluatorFactory = default_evaluator,
        provider_factory: ProviderFactory = default_provider,
        key_lookup: Callable[[str], tuple[str, str] | None] = provider_key,
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
        pick: PickMode | None = None,
        attempt: int = 0,
    ) -> DeepResult:
        """One search. ``pick`` overrides the settings' final pick; ``attempt`` > 0 makes this run an
        independent resample (deep-bench): every request carries ``seed=attempt`` and, when the configured
        temperature is 0, ``resample_temperature``, so its answers differ from attempt 0's (and from each
        other's in the response cache)."""
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
        providers = self._providers(specs)
        run_conf = {
            "search": asdict(config),
            "budgets": asdict(budgets),
            "llm": {
                "temperature": self.settings.temperature
                if attempt == 0 or self.settings.temperature > 0
                else self.settings.resample_temperature,
                "max_output_tokens": self.settings.max_output_tokens,
                "timeout_s": self.settings.timeout_s,
                "max_retries": self.settings.max_retries,
                "seed": attempt or None,
            },
            "pick": self._pick_conf(pick),
            "generate_tests": n_gen,
            "prompts_version": prompts_version(),
        }
        self.store.create_run(run_id, asdict(pub), run_conf, [asdict(a) for a in specs])
        plan = RunPlan(run_id, pub, specs, run_conf, config, budgets)
        return self._execute(plan, providers, on_event, cancel)

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
        plan = RunPlan.stored(run_id, row)
        if plan.search.method != "mc-toa" and plan.tree is not None:
            raise StoreError(
                f"Run {run_id} is a {plan.search.method} baseline run; only MC-ToA runs resume mid-search."
            )
        self._require_consent(plan.agents, run_id)
        providers = self._providers(plan.agents)
        self.store.claim(run_id)
        return self._execute(plan, providers, on_event, cancel)

    def replay(
        self, run_id: str, on_event: Callable[[ev.DeepEvent], None] | None = None
    ) -> tuple[DeepResult, bool]:
        """Re-run a stored run from the response cache only (nothing is sent; a cache miss ends the replay
        with ``stopped_by="replay_miss"``). Returns the new run's result and whether its tree is identical
        to the original's."""
        row = self.store.get_run(run_id)
        original = RunPlan.stored(run_id, row)
        pub = replace(
            original.problem,
            public_tests=tuple(t for t in original.problem.public_tests if t.origin != "generated"),
        )
        new_id = new_run_id() + "-replay"
        self.store.create_run(new_id, asdict(pub), row.config | {"replay_of": run_id}, row.agents)
        plan = replace(
            original, run_id=new_id, problem=pub, tree=None, meter=Meter(), resumed=False, replay_only=True
        )
        result = self._execute(plan, {}, on_event, None)
        return result, row.checkpoint is not None and row.checkpoint == self.store.get_run(new_id).checkpoint

    def pick(
        self,
        problem: Problem | PublicProblem,
        agents: Sequence[AgentSpec | str],
        candidates: Sequence[Candidate],
        budgets: Budgets,
        *,
        run_id: str,
        mode: PickMode | None = None,
        probe: Callable[[str, Sequence[str]], Sequence[str]] | None = None,
    ) -> Pick:
        """The final pick over ``candidates`` (in ``first`` order) gathered from finished runs of one problem.

        ``first`` spends nothing. ``sstar`` spends at most one call, through a gateway of its own (the
        response cache, ``budgets``, the consent on record for ``run_id``); the returned :class:`Pick` says
        what it spent. ``probe`` runs a program on inputs in the sandbox (default: the evaluator's)."""
        conf = self._pick_conf(mode)
        if conf["mode"] != "sstar":
            return first_pick(candidates, "first", conf["programs"])
        if not find_ties(candidates, conf["programs"]).tied:
            return first_pick(candidates, "sstar", conf["programs"])  # nothing to ask: no provider needed
        specs = unique_names([a if isinstance(a, AgentSpec) else parse_agent(a) for a in agents])
        pub = public_view(problem)
        self._require_consent(specs, run_id)
        providers = self._providers(specs)
        if probe is None:
            probe = getattr(self.evaluator_factory(pub), "probe", None)
        gateway = Gateway(
            specs,
            providers,
            self.store,
            Meter(),
            budgets,
            timeout_s=self.settings.timeout_s,
            max_retries=self.settings.max_retries,
            sleep=self.sleep,
            max_concurrency=self.settings.concurrency,
        )
        team = LLMTeam(
            gateway,
            [a.name for a in specs],
            max_tokens=self.settings.max_output_tokens,
            temperature=self.settings.temperature,
        )
        try:
            return _sstar_pick(pub, team, specs, candidates, probe, conf)
        finally:
            gateway.close()

    # ---- internals ----------------------------------------------------------------------------------

    def _pick_conf(self, mode: PickMode | None) -> dict[str, Any]:
        s = self.settings
        return {"mode": mode or s.pick, "programs": s.pick_programs, "inputs": s.pick_inputs}

    def _require_consent(self, specs: Sequence[AgentSpec], run_id: str) -> None:
        if not has_consent(self.store, [a.base_url for a in specs], run_id):
            raise ConsentError(
                "Deep mode has no recorded consent for these providers; run `bdc deep` in a terminal to be "
                "asked, or add --yes."
            )

    def _providers(self, specs: Sequence[AgentSpec]) -> dict[str, Provider]:
        """One provider per agent, with its key; from now on the store scrubs those keys from all it writes."""
        redactor = keymod.Redactor()
        providers: dict[str, Provider] = {}
        for a in specs:
            found = self.key_lookup(a.preset)
            key = found[0] if found else None
            if key is None and a.key_required:
                env = " or ".join(keymod.env_names(a.preset, key_envs().get(a.preset, ())))
                raise ProviderError(f"No API key for {a.preset}: run `bdc keys set {a.preset}` or set {env}.")
            redactor.add(key)
            providers[a.name] = self.provider_factory(a, key)
        self.store.scrub = redactor.scrub
        return providers

    def _execute(
        self,
        plan: RunPlan,
        providers: dict[str, Provider],
        on_event: Callable[[ev.DeepEvent], None] | None,
        cancel: CancelToken | None,
    ) -> DeepResult:
        session = _Session(self.store, plan, on_event, cancel)
        llm = plan.conf["llm"]
        gateway = Gateway(
            plan.agents,
            providers,
            self.store,
            plan.meter,
            plan.budgets,
            timeout_s=llm["timeout_s"],
            max_retries=llm["max_retries"],
            emit=session.emit,
            cancel=cancel,
            sleep=self.sleep,
            max_concurrency=self.settings.concurrency,
            replay_only=plan.replay_only,
            should_stop=session.stop_reason,
        )
        team = LLMTeam(
            gateway,
            [a.name for a in plan.agents],
            max_tokens=llm["max_output_tokens"],
            temperature=llm["temperature"],
            seed=llm.get("seed"),
        )
        agents = tuple(a.name for a in plan.agents)
        pick_conf = plan.conf.get("pick") or {"mode": "first"}  # runs stored before the pick existed
        sstar_mode = pick_conf["mode"] == "sstar"
        if sstar_mode and plan.budgets.max_calls > 1:  # one call stays back for the final pick
            gateway.budgets = replace(plan.budgets, max_calls=plan.budgets.max_calls - 1)
        session.sink(ev.RunStarted(plan.run_id, plan.problem.id, agents, resumed=plan.resumed))
        try:
            outcome, evaluator = self._search(plan, team, session)
            gateway.budgets = plan.budgets
            candidates = tree_candidates(outcome.tree)
            pick = first_pick(candidates, "first", int(pick_conf.get("programs", 4)))
            if sstar_mode and outcome.stopped_by not in ("cancelled", "no_tests"):
                probe = getattr(evaluator, "probe", None)
                pick = _sstar_pick(plan.problem, team, plan.agents, candidates, probe, pick_conf)
        except BaseException:
            self.store.mark_failed(plan.run_id)
            raise
        finally:
            gateway.close()
        return self._finish(plan, session, outcome, pick)

    def _search(self, plan: RunPlan, team: LLMTeam, session: _Session) -> tuple[SearchOutcome, Evaluator]:
        pub, stop = plan.problem, None
        if plan.wants_generated_tests():
            try:
                pub = self._add_generated_tests(plan, team)
            except StopSearch as exc:
                stop = exc
        if stop is None and not pub.public_tests:
            stop = StopSearch("no_tests", "no public test could be obtained")
        evaluator = self.evaluator_factory(pub) if stop is None else _NullEvaluator()
        search = make_search(
            pub,
            team,
            evaluator,
            plan.search,
            emit=session.emit,
            on_checkpoint=session.checkpoint,
            check_stop=session.stop_reason,
        )
        if plan.tree is not None:
            search.tree = plan.tree
        return (search.run() if stop is None else search.outcome(stop.reason, stop.detail)), evaluator

    def _add_generated_tests(self, plan: RunPlan, team: LLMTeam) -> PublicProblem:
        generated = team.generate_tests(plan.agents[0].name, plan.problem, plan.conf["generate_tests"])
        pub = replace(plan.problem, public_tests=tuple(plan.problem.public_tests) + tuple(generated))
        self.store.update_problem(plan.run_id, asdict(pub), plan.meter.snapshot())  # tests + what they cost
        return pub

    def _finish(self, plan: RunPlan, session: _Session, outcome: SearchOutcome, pick: Pick) -> DeepResult:
        meter = plan.meter
        meter.elapsed_s = session.elapsed()
        tree = outcome.tree
        best_code, best_node = outcome.best_code, outcome.best_node
        if pick.changed:  # S* chose another tied program (same public pass rate)
            best_code, best_node = pick.code, pick.node
        result = DeepResult(
            run_id=plan.run_id,
            best_code=best_code,
            public_pass_rate=outcome.public_pass_rate,
            nodes=len(tree.nodes),
            pruned=tree.pruned_total,
            refined=tree.refines_total,
            calls=meter.calls,
            stopped_by=outcome.stopped_by,
            detail=self.store.scrub(outcome.detail),
            best_node=best_node,
            spend_usd=meter.spend_usd,
            tokens_in=meter.tokens_in,
            tokens_out=meter.tokens_out,
            meter=meter.snapshot(),
            pick=pick.as_record(),
            tree=tree,
        )
        session.emit(ev.Finished(plan.run_id, result.stopped_by, result.public_pass_rate, result.as_json()))
        self.store.finish(
            plan.run_id,
            status="running" if outcome.stopped_by == "cancelled" else "finished",  # cancelled: resumable
            stopped_by=result.stopped_by,
            result=result.as_record(),
            tree=tree.to_json(),
            meter=meter.snapshot(),
            events=session.take_events(),
        )
        return result


@dataclass
class RunPlan:
    """What one execution of a run needs besides its providers: the problem, agents, caps, and (when
    resuming) the checkpointed tree and meter."""

    run_id: str
    problem: PublicProblem
    agents: Sequence[AgentSpec]
    conf: dict[str, Any]  # as stored with the run: search, budgets, llm, generate_tests, prompts_version
    search: SearchConfig
    budgets: Budgets
    tree: Tree | None = None
    meter: Meter = field(default_factory=Meter)
    resumed: bool = False
    replay_only: bool = False

    @classmethod
    def stored(cls, run_id: str, row: RunRow) -> RunPlan:
        """A stored run, to be continued from its last checkpoint."""
        problem = row.problem | {"public_tests": tuple(TestCase(**t) for t in row.problem["public_tests"])}
        return cls(
            run_id,
            PublicProblem(**problem),
            [AgentSpec(**(a | {"price": Price(**a["price"])})) for a in row.agents],
            row.config,
            SearchConfig(**row.config["search"]),
            Budgets(**row.config["budgets"]),
            tree=Tree.from_json(row.checkpoint) if row.checkpoint else None,
            meter=Meter.restore(row.meter),
            resumed=True,
        )

    def wants_generated_tests(self) -> bool:
        """Tests are generated once per run, before the first rollout."""
        already = any(t.origin == "generated" for t in self.problem.public_tests)
        return bool(self.conf.get("generate_tests")) and self.tree is None and not already


class _Session:
    """One execution of a run: its events, buffered until the next checkpoint, and its clock, which goes on
    from what earlier sessions of the run used."""

    def __init__(
        self,
        store: RunStore,
        plan: RunPlan,
        on_event: Callable[[ev.DeepEvent], None] | None,
        cancel: CancelToken | None,
    ) -> None:
        self.store, self.plan, self.cancel = store, plan, cancel
        self.sink = on_event or (lambda e: None)
        self.buffer: list[tuple[float, int | None, str, int | None, dict[str, Any]]] = []
        self.rollout = plan.tree.rollout if plan.tree else 0
        self.started = time.monotonic()
        self.earlier_s = plan.meter.elapsed_s

    def elapsed(self) -> float:
        return self.earlier_s + (time.monotonic() - self.started)

    def stop_reason(self) -> str | None:
        if self.cancel is not None and self.cancel.cancelled:
            return "cancelled"
        if self.plan.budgets.wall_clock_s and self.elapsed() >= self.plan.budgets.wall_clock_s:
            return "wall_clock"
        return None

    def emit(self, event: ev.DeepEvent) -> None:
        if isinstance(event, ev.RolloutDone):
            event = replace(event, calls=self.plan.meter.calls, spend_usd=self.plan.meter.spend_usd)
        payload = asdict(event)
        node_id = payload.get("node_id", payload.get("new_node_id"))
        self.buffer.append(
            (time.time(), payload.get("rollout", self.rollout), type(event).__name__, node_id, payload)
        )
        self.sink(event)

    def checkpoint(self, tree: Tree) -> None:
        self.plan.meter.elapsed_s = self.elapsed()
        self.rollout = tree.rollout
        self.store.checkpoint(
            self.plan.run_id, tree.to_json(), self.plan.meter.snapshot(), self.take_events()
        )

    def take_events(self) -> list[tuple[float, int | None, str, int | None, dict[str, Any]]]:
        events, self.buffer = self.buffer, []
        return events


def _sstar_pick(
    problem: PublicProblem,
    team: LLMTeam,
    agents: Sequence[AgentSpec],
    candidates: Sequence[Candidate],
    probe: Callable[[str, Sequence[str]], Sequence[str]] | None,
    conf: dict[str, Any],
) -> Pick:
    """S* through ``team``'s gateway; the first chat agent is asked (a base model cannot follow the
    instruction). The returned pick carries the calls and tokens it spent."""
    asker = next((a.name for a in agents if a.kind != "openai_completion"), None)
    count = int(conf.get("inputs", 5))

    def ask(programs: Sequence[str]) -> str:
        assert asker is not None
        return team.distinguish(asker, problem, programs, count)

    meter = team.gateway.meter
    before = (meter.calls, meter.tokens_in, meter.tokens_out)
    pick = sstar(
        problem,
        candidates,
        ask=ask if asker is not None else None,
        probe=probe,
        max_programs=int(conf.get("programs", 4)),
        max_inputs=count,
    )
    return replace(
        pick,
        calls=meter.calls - before[0],
        tokens_in=meter.tokens_in - before[1],
        tokens_out=meter.tokens_out - before[2],
    )


class _NullEvaluator:
    def evaluate(self, code: str):  # type: ignore[no-untyped-def]
        raise AssertionError("no evaluation without tests")

    def trace(self, code: str, failure: object) -> str:
        return ""
