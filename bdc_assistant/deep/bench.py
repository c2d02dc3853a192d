"""Compare search methods at an equal LLM-call budget on a dataset (``bdc deep-bench``).

Methods, each run through the same :class:`~.runner.DeepRunner` (so every tree is stored and exportable):
  * ``zero-shot[A]``: agent A's direct solve, *one* call (budget 1; the floor, kept for reference);
  * ``best-of-n[A]``: zero-shot at the full budget: independent direct solves of agent A (attempt 0 at the
    configured temperature, then one new seed per attempt) until the budget is spent, best by public tests;
  * ``single[A]``: MC-ToA with agent A alone, prune and refine on (only with two or more agents);
  * ``mc-toa``: all agents, no prune, no refine; ``mc-toa+prune``; ``mc-toa+prune+refine``;
  * the paper's other Table-1 rows, single-agent, one per agent, on request (``--methods``):
    ``ldb[A]``, ``rap[A]``, ``reflexion[A]``, ``lats[A]``, ``tot[A]``, ``rethinkmcts[A]``
    (:mod:`.methods`; same runner, cache, budget rules and sandbox evaluator as MC-ToA).

Equal budget, really. Every method but ``zero-shot[A]`` gets the same N calls per problem (``--max-calls``;
a cache hit counts as a call, so every method gets the same *logical* budget). A method whose search ends
with calls left because it has nothing more to do -- its rollout cap, every branch pruned
(``exhausted``), only finished leaves left (``converged``), or a direct solve done -- *resamples*: it
starts a new independent attempt (a fresh tree, ``seed = attempt``, and ``resample_temperature`` when the
configured temperature is 0, so the answers differ) with the calls left, and so on. This is the fair
choice: a method that converges early would otherwise be compared at a smaller budget, and resampling is
what a user with N calls would do with the rest (for zero-shot it is exactly best-of-N). Only two things
end a method early, the same for every method: a program that passes every public test (``solved``,
when ``early_stop`` is on: more attempts could only add programs the public tests cannot rank; the S* pick
is what ranks them) and calls too few for the next batch (or another cap: USD, provider failure). What is
left is counted as *unspent* and shown per method; it is never silently dropped. The final pick over all
attempts uses the public pass rate; ties go to the earliest candidate (attempt, node id, policy, sample).

S* pick (``--pick sstar``, :mod:`.pick`). One call of every N-call method stays back for the final pick
(the search gets N-1). When two or more distinct programs tie at the best public pass rate, one agent is
asked for distinguishing inputs, the tied programs run on them in the sandbox, and the largest behaviour
cluster wins; with no tie the reserved call is unspent. The pick happens after the search, so each problem
is scored with *both* picks from the same trees: ``ac``/``pr`` are for the configured pick, ``ac_first``/
``pr_first`` for the ``first`` pick (equal under ``--pick first``); ``ties`` counts problems with a tie,
``sstar_changed`` the picks S* changed, ``sstar_fallbacks`` why S* kept the ``first`` pick (malformed
answer, no budget, ...). Under ``--pick first`` the search gets all N calls and nothing is reserved.

The final program of each method is scored on the problem's *private* tests, after the search, in the
sandbox; AC = share of problems where it passes them all, PR = mean private pass fraction. Per method the
report has mean calls, tokens (in+out) and unspent calls per problem, and mean attempts per problem.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, NamedTuple

from ..types import CancelToken, Problem
from .difficulty_split import split_by_difficulty, split_markdown
from .evaluate import SandboxEvaluator
from .llm import Budgets
from .methods import first_batch
from .outcomes import OutcomeRecord, recorded, tests_fingerprint
from .pick import Candidate, Pick, PickMode, first_pick, tree_candidates
from .providers.presets import AgentSpec
from .runner import DeepRunner, public_view, search_config
from .runner_pool import RunnerPool

# search stops that leave an attempt nothing more to do: with calls left, the method resamples
RESAMPLE_STOPS = frozenset({"rollouts", "exhausted", "converged"})


@dataclass(frozen=True)
class Method:
    name: str
    agents: tuple[AgentSpec, ...]
    overrides: dict[str, Any]
    max_calls: int  # this method's budget per problem


@dataclass
class MethodScore:
    budget: int = 0
    problems: int = 0
    accepted_first: int = 0
    private_pr_first_sum: float = 0.0
    public_pr_sum: float = 0.0
    calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    unspent: int = 0
    attempts: int = 0
    pruned: int = 0
    refined: int = 0
    ties: int = 0
    sstar_changed: int = 0
    sstar_fallbacks: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0
    stopped_by: dict[str, int] = field(default_factory=dict)
    run_ids: list[str] = field(default_factory=list)
    # the final pick's private pass rate, problem by problem, in the run's order (AC and PR derive from it)
    private_rates: list[float] = field(default_factory=list)

    @property
    def outcomes(self) -> list[bool]:
        """Accepted (every private test passed), problem by problem, in the run's order."""
        return [rate >= 1.0 for rate in self.private_rates]

    @property
    def accepted(self) -> int:
        return sum(self.outcomes)

    def as_dict(self) -> dict[str, Any]:
        from ..evaluation.metrics import bootstrap_mean_ci95, wilson_ci95

        n = max(self.problems, 1)
        tokens = self.tokens_in + self.tokens_out
        return {
            "ac": round(100 * self.accepted / n, 2),
            "ac_ci95": list(wilson_ci95(self.accepted, self.problems)),
            "pr": round(100 * sum(self.private_rates) / n, 2),
            "pr_ci95": list(bootstrap_mean_ci95(self.private_rates)),
            "ac_first": round(100 * self.accepted_first / n, 2),
            "pr_first": round(100 * self.private_pr_first_sum / n, 2),
            "public_pr": round(100 * self.public_pr_sum / n, 2),
            "problems": self.problems,
            "budget": self.budget,
            "calls": self.calls,
            "calls_per_problem": round(self.calls / n, 2),
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "tokens_per_problem": round(tokens / n, 1),
            "unspent": self.unspent,
            "unspent_per_problem": round(self.unspent / n, 2),
            "attempts_per_problem": round(self.attempts / n, 2),
            "pruned": self.pruned,
            "refined": self.refined,
            "ties": self.ties,
            "sstar_changed": self.sstar_changed,
            "sstar_fallbacks": self.sstar_fallbacks,
            "wall_s": round(self.wall_s, 1),
            "stopped_by": self.stopped_by,
        }


@dataclass(frozen=True)
class MethodRun:
    """One method on one problem: every attempt's spend, the candidates, and both picks."""

    budget: int
    calls: int  # search calls of every attempt plus the pick's
    tokens_in: int
    tokens_out: int
    attempts: int
    stopped_by: str  # what ended the method (see ended_by)
    pick: Pick
    first: Pick
    public_pass_rate: float
    pruned: int
    refined: int
    run_ids: tuple[str, ...]

    @property
    def unspent(self) -> int:
        return self.budget - self.calls


# ---- pure accounting ------------------------------------------------------------------------------------


# the Table-1 baselines (:mod:`.methods`); ToT's depth is 2 so one BFS (1 + 3 + 6 + 2 = 12 calls at width 2,
# beam 2) fits the default 12-call budget; calls left after it are resampled like any other method's
BASELINES: dict[str, dict[str, Any]] = {
    "ldb": {"method": "ldb"},
    "rap": {"method": "rap"},
    "reflexion": {"method": "reflexion"},
    "lats": {"method": "lats"},
    "tot": {"method": "tot", "max_depth": 2, "beam": 2},
    "rethinkmcts": {"method": "rethinkmcts"},
}
DEFAULT_METHODS = ("zero-shot", "best-of-n", "single", "mc-toa", "mc-toa+prune", "mc-toa+prune+refine")
ALL_METHODS = ("zero-shot", "best-of-n", *BASELINES, *DEFAULT_METHODS[2:])


def method_names(spec: str | None) -> tuple[str, ...]:
    """``--methods``: a comma list of :data:`ALL_METHODS` (or ``all``, or ``default``); table order kept."""
    from ..errors import ConfigError

    if not spec:
        return DEFAULT_METHODS
    asked = {n.strip().lower() for n in spec.split(",") if n.strip()}
    if "all" in asked:
        return ALL_METHODS
    if "default" in asked:
        asked = (asked - {"default"}) | set(DEFAULT_METHODS)
    unknown = sorted(asked - set(ALL_METHODS))
    if unknown or not asked:
        raise ConfigError(
            f"Unknown method(s) {', '.join(unknown) or '(none)'}; known: {', '.join(ALL_METHODS)}."
        )
    return tuple(n for n in ALL_METHODS if n in asked)


def methods_for(
    agents: Sequence[AgentSpec], max_calls: int, names: Sequence[str] = DEFAULT_METHODS
) -> list[Method]:
    """The methods ``names`` asks for, in table order; per-agent ones once per agent (``single`` only with
    two or more agents)."""
    direct = {"rollouts": 0, "samples": 1}
    everyone = tuple(agents)
    out: list[Method] = []
    for name in ALL_METHODS:
        if name not in names:
            continue
        if name == "zero-shot":
            out += [Method(f"zero-shot[{a.name}]", (a,), direct, 1) for a in agents]
        elif name == "best-of-n":
            out += [Method(f"best-of-n[{a.name}]", (a,), direct, max_calls) for a in agents]
        elif name in BASELINES:
            out += [Method(f"{name}[{a.name}]", (a,), BASELINES[name], max_calls) for a in agents]
        elif name == "single" and len(agents) > 1:
            out += [
                Method(f"single[{a.name}]", (a,), {"prune": True, "refine": True}, max_calls) for a in agents
            ]
        elif name == "mc-toa":
            out.append(Method("mc-toa", everyone, {"prune": False, "refine": False}, max_calls))
        elif name == "mc-toa+prune":
            out.append(Method("mc-toa+prune", everyone, {"prune": True, "refine": False}, max_calls))
        elif name == "mc-toa+prune+refine":
            out.append(Method("mc-toa+prune+refine", everyone, {"prune": True, "refine": True}, max_calls))
    # rows that are not a baseline search with MC-ToA whatever the user's `deep.method` says
    return [replace(m, overrides={"method": "mc-toa", **m.overrides}) for m in out]


def search_budget(budget: int, pick: PickMode) -> int:
    """Calls the attempts may spend: all of them, less the one S* keeps back (not from a 1-call budget)."""
    return budget - 1 if pick == "sstar" and budget > 1 else budget


def min_attempt_calls(n_agents: int, samples: int) -> int:
    """An attempt's first batch (the root solve: every agent writes ``samples`` programs)."""
    return n_agents * samples


def resample(stopped_by: str, calls_left: int, min_calls: int) -> bool:
    """Start another independent attempt: the last one had nothing more to do and the calls left pay for a
    new attempt's first batch."""
    return stopped_by in RESAMPLE_STOPS and calls_left >= min_calls


def ended_by(stopped_by: str, calls_left: int, min_calls: int) -> str:
    """Why the method ended: a resample-able stop with too few calls for another attempt is the budget."""
    return "max_calls" if stopped_by in RESAMPLE_STOPS and calls_left < min_calls else stopped_by


# ---- running --------------------------------------------------------------------------------------------


class Scored(NamedTuple):
    """One method's result on one problem, before it is added to the method's score."""

    method: Method
    run: MethodRun
    private_first: float  # private pass rate of the first pick
    private: float  # private pass rate of the final pick
    wall_s: float


def private_score(sandbox: Any, problem: Problem, code: str, outcomes: OutcomeRecord | None = None) -> float:
    if not problem.private_tests or not code.strip():
        return 0.0

    def score() -> float:
        verdicts = sandbox.run_tests(code, problem.private_tests, checker=problem.checker)
        return sum(v.passed for v in verdicts) / len(verdicts)

    if outcomes is None:
        return score()
    tests = tests_fingerprint(problem.private_tests, checker=problem.checker, timeout_s=None)
    return outcomes.recall("private", {"tests": tests, "code": code}, score, float, float)


def run_method(
    runner: DeepRunner,
    problem: Problem,
    method: Method,
    *,
    budget_usd: float,
    pick: PickMode,
    sandbox: Any,
    consent: Callable[[str], None] = lambda run_id: None,
    cancel: CancelToken | None = None,
    outcomes: OutcomeRecord | None = None,
) -> MethodRun:
    """Attempts until :func:`resample` says stop, then the final pick over every attempt's candidates.
    ``cancel`` stops the attempt in progress at its next call (``stopped_by="cancelled"``) and the loop."""
    from ..store.runs import new_run_id

    base = replace(search_config(runner.settings), **method.overrides)
    search_calls = search_budget(method.max_calls, pick)
    min_calls = first_batch(base, len(method.agents))
    calls = tokens_in = tokens_out = pruned = refined = 0
    spend = 0.0
    candidates: list[Candidate] = []
    run_ids: list[str] = []
    attempt = 0
    while True:
        run_id = new_run_id()
        consent(run_id)
        result = runner.run(
            problem,
            list(method.agents),
            Budgets(max_calls=search_calls - calls, budget_usd=max(budget_usd - spend, 0.0)),
            config=replace(base, seed=base.seed + attempt),
            run_id=run_id,
            generate_tests=0,
            pick="first",
            attempt=attempt,
            cancel=cancel,
        )
        calls += result.calls
        tokens_in += result.tokens_in
        tokens_out += result.tokens_out
        spend += result.spend_usd
        pruned += result.pruned
        refined += result.refined
        run_ids.append(result.run_id)
        if result.tree is not None:
            candidates += tree_candidates(result.tree, attempt)
        attempt += 1
        if (
            result.calls == 0
            or (cancel is not None and cancel.cancelled)
            or not resample(result.stopped_by, search_calls - calls, min_calls)
        ):
            break
    first = first_pick(candidates, "first", runner.settings.pick_programs)
    chosen = first
    if pick == "sstar":
        chosen = runner.pick(
            problem,
            list(method.agents),
            candidates,
            Budgets(max_calls=method.max_calls - calls, budget_usd=max(budget_usd - spend, 0.0)),
            run_id=run_ids[-1],
            mode="sstar",
            probe=recorded(SandboxEvaluator(sandbox, public_view(problem)), outcomes).probe,
        )
    return MethodRun(
        budget=method.max_calls,
        calls=calls + chosen.calls,
        tokens_in=tokens_in + chosen.tokens_in,
        tokens_out=tokens_out + chosen.tokens_out,
        attempts=attempt,
        stopped_by=ended_by(result.stopped_by, search_calls - calls, min_calls),
        pick=chosen,
        first=first,
        public_pass_rate=first.pass_rate,
        pruned=pruned,
        refined=refined,
        run_ids=tuple(run_ids),
    )


class _Cancelled(Exception):
    """A problem whose methods were cut short by the bench's cancel token: it is not committed."""


def solve_problem(
    runner: DeepRunner,
    problem: Problem,
    methods: Sequence[Method],
    *,
    budget_usd: float,
    pick: PickMode,
    sandbox: Any,
    consent: Callable[[str], None],
    cancel: CancelToken | None = None,
    outcomes: OutcomeRecord | None = None,
) -> list[Scored]:
    """Every method on one problem, each scored on the private tests; :class:`_Cancelled` if ``cancel``
    cut any of them short (its rows would be on a smaller budget, so the problem is dropped whole)."""
    done: list[Scored] = []
    for m in methods:
        start = time.monotonic()
        run = run_method(
            runner,
            problem,
            m,
            budget_usd=budget_usd,
            pick=pick,
            sandbox=sandbox,
            consent=consent,
            cancel=cancel,
            outcomes=outcomes,
        )
        if cancel is not None and cancel.cancelled:
            raise _Cancelled(problem.id)
        private_first = private_score(sandbox, problem, run.first.code, outcomes)
        private = (
            private_first
            if run.pick.code == run.first.code
            else private_score(sandbox, problem, run.pick.code, outcomes)
        )
        done.append(Scored(m, run, private_first, private, time.monotonic() - start))
    return done


def run_bench(
    runner: DeepRunner,
    problems: Sequence[Problem],
    agents: Sequence[AgentSpec],
    *,
    max_calls: int,
    budget_usd: float,
    sandbox: Any,
    pick: PickMode = "first",
    on_progress: Callable[[str], None] = lambda s: None,
    consent: Callable[[str], None] = lambda run_id: None,
    methods_asked: Sequence[str] = DEFAULT_METHODS,
    jobs: int = 1,
    make_runner: Callable[[], DeepRunner] | None = None,
    outcomes: OutcomeRecord | None = None,
) -> dict[str, Any]:
    """Every method on every problem. ``jobs`` > 1 keeps that many problems in flight (threads, a runner
    from ``make_runner`` each: its own store connection); a server that batches concurrent requests
    (llama.cpp's ``llama-server --parallel``, any cloud API) then answers several at once. The numbers do
    not depend on ``jobs``: each problem's methods run in order on one thread, every response goes through
    the same content-addressed cache, and the rows are added up in the dataset's order. ``outcomes``
    records the private scores and S* probes (:mod:`.outcomes`); give the runners' evaluators the same
    record (:func:`.outcomes.recorded`) and a resumed bench replays every sandbox outcome too."""
    t0 = time.monotonic()
    methods = methods_for(agents, max_calls, methods_asked)
    scores = {m.name: MethodScore(budget=m.max_calls) for m in methods}
    # A problem counts whole or not at all: its rows are committed after its last method, so an interrupt
    # (Ctrl-C, SIGTERM: a KeyboardInterrupt in the main thread) leaves every row on the same problems.
    # committed: problem index -> that problem's results (empty when it was skipped).
    committed: dict[int, list[Scored]] = {}
    solve = partial(
        solve_problem, methods=methods, budget_usd=budget_usd, pick=pick, sandbox=sandbox, outcomes=outcomes
    )
    try:
        if jobs <= 1:
            for i, problem in enumerate(problems):
                if not _skip_untested(problems, i, committed, on_progress):
                    committed[i] = solve(runner, problem, consent=consent)
                    on_progress(_line(problems, i, " ".join(_marks(committed[i]))))
        else:
            _solve_in_parallel(problems, solve, committed, jobs, make_runner, consent, on_progress)
    except KeyboardInterrupt:
        n = len(committed)
        if n < len(problems):
            first_open = next(i for i in range(len(problems)) if i not in committed)
            before = "before it" if jobs <= 1 else "finished"
            on_progress(
                _line(
                    problems,
                    first_open,
                    f"interrupted; the report covers the {n} problems {before} (the responses of unfinished ones "
                    "are cached, so a rerun continues there)",
                )
            )
    reached = [p for i, p in enumerate(problems) if i in committed]
    for i in sorted(committed):
        for scored in committed[i]:
            _add_run(scores[scored.method.name], scored)
    tested = [p for p in reached if p.public_tests]  # the problems the rows were scored on
    per_problem: dict[str, Any] = {
        "ids": [p.id for p in tested],
        "difficulty": [p.difficulty for p in tested],
        "accepted": {name: [int(x) for x in s.outcomes] for name, s in scores.items()},
        "private": {name: [round(x, 4) for x in s.private_rates] for name, s in scores.items()},
    }
    report: dict[str, Any] = {
        "problems": len(reached),
        "max_calls": max_calls,
        "pick": pick,
        "agents": [a.name for a in agents],
        "methods": {name: s.as_dict() for name, s in scores.items()},
        "vs_zero_shot": paired_against_zero_shot(scores),
        "per_problem": per_problem,
        "wall_s": round(time.monotonic() - t0, 1),
        "jobs": max(1, jobs),
    }
    if tested and all(p.source == "codecontests" for p in tested):
        report["by_difficulty"] = split_by_difficulty(per_problem)
    if len(reached) < len(problems):
        report["interrupted"] = {"after": len(reached), "of": len(problems)}
    return report


def _solve_in_parallel(
    problems: Sequence[Problem],
    solve: Callable[..., list[Scored]],
    committed: dict[int, list[Scored]],
    jobs: int,
    make_runner: Callable[[], DeepRunner] | None,
    consent: Callable[[str], None],
    on_progress: Callable[[str], None],
) -> None:
    """``jobs`` problems in flight; each finished problem lands in ``committed``. On KeyboardInterrupt the
    problems in flight are cancelled at their next call (their responses so far stay cached) and it
    re-raises once the threads have stopped."""
    if make_runner is None:
        raise ValueError("run_bench(jobs > 1) needs make_runner: one runner (store connection) per thread")
    cancel = CancelToken()
    lock = threading.Lock()
    runners = RunnerPool(make_runner)

    def locked_consent(run_id: str) -> None:
        with lock:  # one question on the terminal at a time, one writer of the consent record
            consent(run_id)

    def work(problem: Problem) -> list[Scored]:
        with runners.lease() as runner:
            return solve(runner, problem, consent=locked_consent, cancel=cancel)

    pool = ThreadPoolExecutor(jobs, thread_name_prefix="bdc-bench")
    futures: dict[Future[list[Scored]], int] = {}
    try:
        for i, problem in enumerate(problems):
            if not _skip_untested(problems, i, committed, on_progress):
                futures[pool.submit(work, problem)] = i
        for f in as_completed(futures):
            i = futures[f]
            committed[i] = f.result()
            done = f"({len(committed)} of {len(problems)} done)"
            on_progress(_line(problems, i, " ".join([*_marks(committed[i]), done])))
    except BaseException:
        cancel.cancel()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        for f, i in futures.items():  # finished while the others were being cancelled: keep them
            if i not in committed and f.done() and not f.cancelled() and f.exception() is None:
                committed[i] = f.result()
        runners.close()


def _line(problems: Sequence[Problem], i: int, text: str) -> str:
    """A progress line: ``[i/N] id: text``."""
    return f"[{i + 1}/{len(problems)}] {problems[i].id}: {text}"


def _skip_untested(
    problems: Sequence[Problem],
    i: int,
    committed: dict[int, list[Scored]],
    on_progress: Callable[[str], None],
) -> bool:
    """A problem without public tests is committed with no rows (no method can rank its programs)."""
    if problems[i].public_tests:
        return False
    committed[i] = []
    on_progress(_line(problems, i, "skipped (no public tests)"))
    return True


def _marks(done: Sequence[Scored]) -> list[str]:
    """``name=AC`` or ``name=<private pass rate>`` per row, ``*`` where S* changed the pick."""
    return [
        f"{d.method.name}={'AC' if d.private >= 1.0 else f'{d.private:.2f}'}{'*' if d.run.pick.changed else ''}"
        for d in done
    ]


def _add_run(s: MethodScore, scored: Scored) -> None:
    run, private_first, private = scored.run, scored.private_first, scored.private
    s.problems += 1
    s.private_rates.append(private)
    s.accepted_first += int(private_first >= 1.0)
    s.private_pr_first_sum += private_first
    s.public_pr_sum += run.public_pass_rate
    s.calls += run.calls
    s.tokens_in += run.tokens_in
    s.tokens_out += run.tokens_out
    s.unspent += run.unspent
    s.attempts += run.attempts
    s.pruned += run.pruned
    s.refined += run.refined
    s.ties += int(run.first.tied > 1)
    s.sstar_changed += int(run.pick.changed)
    if run.pick.fallback:
        s.sstar_fallbacks[run.pick.fallback] = s.sstar_fallbacks.get(run.pick.fallback, 0) + 1
    s.wall_s += scored.wall_s
    s.stopped_by[run.stopped_by] = s.stopped_by.get(run.stopped_by, 0) + 1
    s.run_ids.extend(run.run_ids)


def paired_against_zero_shot(scores: dict[str, MethodScore]) -> dict[str, Any]:
    """Each method's AC minus the best zero-shot row's, on the same problems, with a paired-bootstrap 95 % CI
    (the question the table asks: does searching with the budget beat asking once?)."""
    from ..evaluation.metrics import paired_bootstrap_ci95

    zero = [n for n in scores if n.startswith("zero-shot[") and scores[n].outcomes]
    if not zero:
        return {}
    base = max(zero, key=lambda n: scores[n].accepted)  # max keeps the first of a tie
    ref = scores[base].outcomes
    out: dict[str, Any] = {"baseline": base, "methods": {}}
    for name, s in scores.items():
        if name == base or len(s.outcomes) != len(ref):
            continue
        diff = 100.0 * (s.accepted - scores[base].accepted) / len(ref)
        out["methods"][name] = {
            "ac_diff": round(diff, 2),
            "ci95": list(paired_bootstrap_ci95(ref, s.outcomes)),
        }
    return out


def _ci_cells(report: dict[str, Any], name: str, sep: str) -> tuple[str, str]:
    """(``lo–hi`` of a row's AC Wilson CI, ``+d [lo<sep>hi]`` of its paired difference or "–")."""
    lo, hi = report["methods"][name].get("ac_ci95", (0.0, 0.0))
    d = report.get("vs_zero_shot", {}).get("methods", {}).get(name)
    diff = f"{d['ac_diff']:+.1f} [{d['ci95'][0]:+.1f}{sep}{d['ci95'][1]:+.1f}]" if d else "–"
    return f"{lo:.1f}–{hi:.1f}", diff


def _pr_ci(row: dict[str, Any]) -> str:
    """``lo–hi`` of a row's PR bootstrap CI ("–" in a report written before PR had one)."""
    ci = row.get("pr_ci95")
    return f"{ci[0]:.1f}–{ci[1]:.1f}" if ci else "–"


def _problems_text(report: dict[str, Any]) -> str:
    stop = report.get("interrupted")
    tail = f" (interrupted after {stop['after']} of {stop['of']})" if stop else ""
    return f"{report['problems']} problems{tail}"


def table(report: dict[str, Any]) -> str:
    """The per-method table ``bdc deep-bench`` prints: AC/PR beside mean calls, tokens and unspent calls
    per problem, ties, and (under ``--pick sstar``) the ``first`` pick's AC from the same trees."""
    methods = report["methods"]
    width = max([len(n) for n in methods] + [6])
    sstar_mode = report.get("pick") == "sstar"
    head = f"{'method':<{width}}  {'AC%':>6} {'AC 95% CI':>13} {'ΔAC vs 0-shot [CI]':>22} {'PR%':>6} {'PR 95% CI':>11}"
    if sstar_mode:
        head += f" {'AC%1st':>6}"
    head += f" {'budget':>6} {'calls':>6} {'tokens':>8} {'unspent':>7} {'ties':>4}"
    if sstar_mode:
        head += f" {'S*chg':>5} {'S*fb':>4}"
    lines = [head]
    for name, m in methods.items():
        ci, diff = _ci_cells(report, name, ",")
        row = f"{name:<{width}}  {m['ac']:>6.2f} {ci:>13} {diff:>22} {m['pr']:>6.2f} {_pr_ci(m):>11}"
        if sstar_mode:
            row += f" {m['ac_first']:>6.2f}"
        row += (
            f" {m['budget']:>6} {m['calls_per_problem']:>6.2f} {m['tokens_per_problem']:>8.0f}"
            f" {m['unspent_per_problem']:>7.2f} {m['ties']:>4}"
        )
        if sstar_mode:
            row += f" {m['sstar_changed']:>5} {sum(m['sstar_fallbacks'].values()):>4}"
        lines.append(row)
    lines.append(
        f"({_problems_text(report)}, budget {report['max_calls']} calls (zero-shot: 1), pick "
        f"{report.get('pick', 'first')}, {report.get('wall_s', 0)} s; calls, tokens (in+out) and unspent "
        "calls are means per problem; AC 95% CI = Wilson, PR 95% CI = bootstrap over problems; ΔAC vs 0-shot = AC minus the best zero-shot row's "
        f"({report.get('vs_zero_shot', {}).get('baseline', '–')}), paired bootstrap 95 % CI; "
        "ties = problems with distinct programs tied on the public tests; "
        "best-of-n = zero-shot resampled to the budget, best by public tests"
        + (
            "; ldb/rap/reflexion/lats/tot/rethinkmcts[A] = Table-1 baselines with agent A"
            if any(n.split("[")[0] in BASELINES for n in methods)
            else ""
        )
        + (
            "; AC%1st = the first pick from the same trees, S*chg = picks S* changed, S*fb = S* fallbacks)"
            if sstar_mode
            else ")"
        )
    )
    return "\n".join(lines)


def markdown(report: dict[str, Any]) -> str:
    """The report as a Markdown table (``bdc deep-bench --markdown FILE``): one row per method with AC and its
    Wilson CI, the paired difference from the best zero-shot row, PR, and the spend per problem."""
    vs = report.get("vs_zero_shot", {})
    rows = [
        f"{report.get('dataset', '?')}: {_problems_text(report)}, budget {report['max_calls']} LLM calls "
        f"per problem (zero-shot: 1), pick `{report.get('pick', 'first')}`, agents "
        + ", ".join(f"`{a}`" for a in report.get("agents", []))
        + f", {report.get('wall_s', 0)} s.",
        "",
        f"| method | AC % | AC 95 % CI | ΔAC vs {vs.get('baseline', 'zero-shot')} [95 % CI] | PR % | PR 95 % CI "
        "| calls | tokens | unspent | ties | pruned | refined |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, m in report["methods"].items():
        ci, diff = _ci_cells(report, name, ", ")
        rows.append(
            f"| {name} | {m['ac']:.1f} | {ci} | {diff} | {m['pr']:.1f} | {_pr_ci(m)} | {m['calls_per_problem']:.2f} "
            f"| {m['tokens_per_problem']:.0f} | {m['unspent_per_problem']:.2f} | {m['ties']} | {m['pruned']} "
            f"| {m['refined']} |"
        )
    rows += [
        "",
        "Calls, tokens (in + out) and unspent calls are means per problem; a method stops early only when a "
        "program passes every public test, and what it did not spend is shown as unspent. AC and PR are "
        "measured on the private tests after the search; AC's 95 % CI is Wilson's, PR's a bootstrap over the "
        "problems.",
    ]
    if report.get("by_difficulty"):
        rows += [
            "",
            "By CodeContests difficulty (the paper's split: easy 0–10, hard 11–25; problems without a rating "
            "apart), AC with its Wilson 95 % CI and PR with its bootstrap 95 % CI, on the private tests:",
            "",
            split_markdown(report["by_difficulty"]),
        ]
    if "sandbox_outcomes" in report:
        o = report["sandbox_outcomes"]
        rows += [
            "",
            f"Sandbox outcomes: {o['recorded']} run and recorded in this sitting, {o['recalled']} read back "
            "from the record (kept by earlier sittings, or by this one where several rows wrote the same "
            "program).",
        ]
    return "\n".join(rows) + "\n"
