"""``bdc deep-bench`` on scripted LLMs (the fake HTTP server) and a scripted sandbox: every method's
numbers are exact, at a budget where prune and refine have room to act, where a method converges early
and resamples, and where S* breaks a tie on the public tests."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace

from bdc_assistant.deep.bench import (
    ALL_METHODS,
    Method,
    ended_by,
    markdown,
    methods_for,
    min_attempt_calls,
    resample,
    run_bench,
    run_method,
    search_budget,
    table,
)
from bdc_assistant.deep.evaluate import SandboxEvaluator
from bdc_assistant.deep.providers.presets import parse_agent
from bdc_assistant.deep.runner import DeepRunner
from bdc_assistant.store.runs import RunStore
from bdc_assistant.types import Problem, TestCase

from .conftest import ADD, make_runner
from .httpfakes import BAD, GOOD, HALF, FakeLLMServer, Script, adder_responder
from .scripted_sandbox import ALT, GOOD2, ScriptedSandbox

PROBLEM = Problem(
    "add",
    ADD.statement,
    public_tests=ADD.public_tests,
    private_tests=(TestCase("2 2\n", "4\n"), TestCase("9 1\n", "10\n")),
)


def _fence(code: str) -> str:
    return "```python\n" + code + "```"


def _plan(messages: list[dict[str, str]]) -> str:
    return messages[-1]["content"].split("Follow this plan:")[-1]


def exhauster_responder(model: str, messages: list[dict[str, str]]) -> str:
    """The direct solve writes HALF; every plan leads to BAD, so prune closes every branch (exhausted)."""
    user = messages[-1]["content"]
    if "Propose" in user:
        return json.dumps([{"thought": "subtract them", "reasonableness": 0.5}] * 2)
    if "explain what is wrong" in user:
        return "It subtracts."
    if "Write a better replacement" in user:
        return "Subtract them again."
    return _fence(BAD if "subtract" in _plan(messages).lower() else HALF)


def tie_responder(distinguish: str) -> object:
    """Three models whose direct solves all pass the public tests: model-a writes ALT (wrong on "9 1"),
    model-b GOOD, model-c GOOD2 (GOOD's behaviour). ``distinguish`` is the answer to the S* question."""

    def respond(model: str, messages: list[dict[str, str]]) -> str:
        user = messages[-1]["content"]
        if "on which these programs would give different results" in user:
            return distinguish
        if "Write the complete Python 3 program" in user:
            return _fence({"a": ALT, "b": GOOD, "c": GOOD2}[model[-1]])
        return "?"

    return respond


def sandboxed(runner: DeepRunner) -> DeepRunner:
    """The search's public tests run on the scripted sandbox too (TableEvaluator knows only 3 programs)."""
    runner.evaluator_factory = lambda p: SandboxEvaluator(ScriptedSandbox(), p)
    return runner


def test_every_method_at_an_equal_budget(server, store) -> None:
    runner = make_runner(store, [server.url])
    agents = [parse_agent(f"openai:{server.url}:model-{c}") for c in "ab"]
    report = run_bench(runner, [PROBLEM], agents, max_calls=12, budget_usd=0, sandbox=ScriptedSandbox())
    got = {
        name: (
            m["ac"],
            m["pr"],
            m["budget"],
            m["calls"],
            m["unspent"],
            m["attempts_per_problem"],
            m["pruned"],
            m["refined"],
            m["stopped_by"],
        )
        for name, m in report["methods"].items()
    }
    # the direct solve writes HALF (private PR 50); model-a's best-rated plan is "subtract" (BAD), only
    # model-b ever proposes "sum" (GOOD); AC and PR are on the private tests. best-of-n resamples the
    # direct solve until the 12 calls are spent; a search that is solved early leaves calls unspent.
    assert got == {
        "zero-shot[openai:model-a]": (0.0, 50.0, 1, 1, 0, 1.0, 0, 0, {"max_calls": 1}),
        "zero-shot[openai:model-b]": (0.0, 50.0, 1, 1, 0, 1.0, 0, 0, {"max_calls": 1}),
        "best-of-n[openai:model-a]": (0.0, 50.0, 12, 12, 0, 12.0, 0, 0, {"max_calls": 1}),
        "best-of-n[openai:model-b]": (0.0, 50.0, 12, 12, 0, 12.0, 0, 0, {"max_calls": 1}),
        "single[openai:model-a]": (100.0, 100.0, 12, 6, 6, 1.0, 0, 1, {"solved": 1}),  # refine: sum
        "single[openai:model-b]": (100.0, 100.0, 12, 10, 2, 1.0, 0, 0, {"solved": 1}),
        "mc-toa": (0.0, 50.0, 12, 12, 0, 1.0, 0, 0, {"max_calls": 1}),
        "mc-toa+prune": (0.0, 50.0, 12, 12, 0, 1.0, 2, 0, {"max_calls": 1}),  # pruning alone: no sum
        "mc-toa+prune+refine": (100.0, 100.0, 12, 10, 2, 1.0, 0, 1, {"solved": 1}),
    }
    for name, m in report["methods"].items():
        assert m["calls"] + m["unspent"] == m["budget"], name  # every call is spent or shown unspent
        assert m["tokens_per_problem"] == m["tokens_in"] + m["tokens_out"] > 0, name
        assert (m["ac_first"], m["pr_first"], m["ties"], m["sstar_fallbacks"]) == (m["ac"], m["pr"], 0, {})
    # CIs: Wilson per row, and each row paired against the best zero-shot row (a tie: the first agent's)
    assert report["methods"]["single[openai:model-a]"]["ac_ci95"] == [20.65, 100.0]
    assert report["methods"]["mc-toa"]["ac_ci95"] == [0.0, 79.35]
    # PR's CI is a bootstrap over problems: one problem, so it is that problem's private pass rate
    assert report["methods"]["mc-toa"]["pr_ci95"] == [50.0, 50.0]
    assert report["methods"]["mc-toa+prune+refine"]["pr_ci95"] == [100.0, 100.0]
    vs = report["vs_zero_shot"]
    assert vs["baseline"] == "zero-shot[openai:model-a]" and "zero-shot[openai:model-a]" not in vs["methods"]
    assert vs["methods"]["mc-toa+prune+refine"] == {"ac_diff": 100.0, "ci95": [100.0, 100.0]}
    assert vs["methods"]["mc-toa"] == {"ac_diff": 0.0, "ci95": [0.0, 0.0]}
    assert report["per_problem"]["ids"] == ["add"]
    assert {n: a for n, a in report["per_problem"]["accepted"].items() if a == [1]} == {
        "single[openai:model-a]": [1],
        "single[openai:model-b]": [1],
        "mc-toa+prune+refine": [1],
    }
    # best-of-n: attempt 0 is the zero-shot request (cache hit), the next 11 carry seeds 1..11
    seeds = sorted({r["body"].get("seed") for r in server.script.requests}, key=lambda s: s or 0)
    assert seeds == [None, *range(1, 12)]
    text = table(report)
    assert "unspent" in text and "tokens" in text and "best-of-n = zero-shot resampled" in text
    assert "+100.0 [+100.0,+100.0]" in text and "20.6–100.0" in text
    md = markdown(report | {"dataset": "add"}).splitlines()
    assert md[2].startswith("| method | AC % | AC 95 % CI | ΔAC vs zero-shot[openai:model-a]")
    row = (
        "| mc-toa+prune+refine | 100.0 | 20.6–100.0 | +100.0 [+100.0, +100.0] | 100.0 | 100.0–100.0 | 10.00 |"
    )
    assert any(line.startswith(row) for line in md)
    assert sum(line.startswith("| ") for line in md) == 1 + len(report["methods"])


def test_a_search_that_exhausts_early_resamples_until_the_budget_is_spent(store) -> None:
    with FakeLLMServer(Script(exhauster_responder)) as srv:
        runner = make_runner(store, [srv.url], width=1)
        agent = parse_agent(f"openai:{srv.url}:model-a")
        prune = Method("mc-toa+prune", (agent,), {"prune": True, "refine": False}, 10)
        run = run_method(runner, PROBLEM, prune, budget_usd=0, pick="first", sandbox=ScriptedSandbox())
        # an attempt: root solve, expand, child solve (ill, pruned), then nothing is selectable = 3 calls;
        # 10 calls = 3 exhausted attempts + a 4th cut short by the budget after its root solve
        assert (run.attempts, run.calls, run.unspent, run.stopped_by) == (4, 10, 0, "max_calls")
        assert run.pick.code == HALF and run.pick.origin == "a0/n0/openai:model-a/s0"  # earliest tie wins
        stopped = [store.get_run(r).stopped_by for r in run.run_ids]
        assert stopped == ["exhausted", "exhausted", "exhausted", "max_calls"]
        # with refine on, an attempt is root solve, expand, child solve, summarise, regenerate, re-solve = 6;
        # the 2nd attempt has 4 calls: after its child solve 1 is left, too few to refine and re-solve, so the
        # ill child is pruned (3 calls, exhausted) and a 3rd attempt spends the last call on a root solve
        refine = Method("mc-toa+prune+refine", (agent,), {"prune": True, "refine": True}, 10)
        run = run_method(runner, PROBLEM, refine, budget_usd=0, pick="first", sandbox=ScriptedSandbox())
        assert (run.attempts, run.calls, run.unspent, run.refined) == (3, 10, 0, 1)
        assert [store.get_run(r).stopped_by for r in run.run_ids] == ["exhausted", "exhausted", "max_calls"]


def test_sstar_breaks_a_public_tie_by_majority_behaviour(store) -> None:
    with FakeLLMServer(Script(tie_responder('["9 1", "4 4"]'))) as srv:
        runner = sandboxed(make_runner(store, [srv.url]))
        agents = [parse_agent(f"openai:{srv.url}:model-{c}") for c in "abc"]
        sandbox = ScriptedSandbox()
        report = run_bench(
            runner, [PROBLEM], agents, max_calls=4, budget_usd=0, sandbox=sandbox, pick="sstar"
        )
        distinguish = [r for r in srv.script.requests if "different results" in str(r["body"]["messages"])]
    m = report["methods"]
    # all three direct solves pass the public tests; model-a's ALT comes first but differs on "9 1"; GOOD
    # and GOOD2 agree there (2 votes to 1): S* picks GOOD, `first` keeps ALT, from the same tree
    for name in ("mc-toa", "mc-toa+prune", "mc-toa+prune+refine"):
        got = m[name]
        assert (got["ac"], got["ac_first"], got["ties"], got["sstar_changed"]) == (100.0, 0.0, 1, 1), name
        assert (got["calls"], got["unspent"], got["sstar_fallbacks"]) == (4, 0, {}), name  # 3 + the S* call
    # one agent, one program: no tie, no S* call, and the reserved call is unspent
    assert (m["best-of-n[openai:model-a]"]["calls"], m["best-of-n[openai:model-a]"]["unspent"]) == (1, 3)
    assert m["best-of-n[openai:model-a]"]["ac"] == m["zero-shot[openai:model-a]"]["ac"] == 0.0
    assert m["zero-shot[openai:model-b]"]["calls"] == 1 and m["zero-shot[openai:model-b]"]["unspent"] == 0
    assert sum(x["ties"] for x in m.values()) == 3
    # the same question three times (one per method): the response cache answers the repeats, but each
    # counts as a call of its method; the tied programs ran in the sandbox on the two inputs
    assert len(distinguish) == 1
    assert sorted(set(sandbox.runs)) == sorted((p, s) for p in (ALT, GOOD, GOOD2) for s in ("9 1\n", "4 4\n"))
    assert "S*chg" in table(report) and "AC%1st" in table(report)


def test_sstar_malformed_answer_falls_back_to_first_and_is_counted(store) -> None:
    with FakeLLMServer(Script(tie_responder("Sorry, I cannot think of any inputs."))) as srv:
        runner = sandboxed(make_runner(store, [srv.url]))
        agents = tuple(parse_agent(f"openai:{srv.url}:model-{c}") for c in "abc")
        method = Method("mc-toa", agents, {"prune": False, "refine": False}, 4)
        run = run_method(runner, PROBLEM, method, budget_usd=0, pick="sstar", sandbox=ScriptedSandbox())
    assert (run.pick.used, run.pick.fallback, run.pick.tied, run.pick.code) == ("first", "malformed", 3, ALT)
    assert (run.calls, run.unspent, run.pick.calls) == (4, 0, 1)  # the call was made, and it is counted


class InterruptingSandbox(ScriptedSandbox):
    """Raises KeyboardInterrupt (as Ctrl-C would) at the ``at``-th private scoring once armed."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.armed = False
        self.at = at

    def run_tests(self, code, tests, checker=None, timeout_s=None):  # type: ignore[no-untyped-def]
        if self.armed:
            self.at -= 1
            if self.at == 0:
                raise KeyboardInterrupt
        return super().run_tests(code, tests, checker, timeout_s)


def test_an_interrupt_mid_problem_reports_the_whole_problems_before_it(server, store) -> None:
    runner = make_runner(store, [server.url])
    agents = [parse_agent(f"openai:{server.url}:model-{c}") for c in "ab"]
    second = Problem("add-again", PROBLEM.statement + " ", PROBLEM.public_tests, PROBLEM.private_tests)
    sandbox = InterruptingSandbox(at=3)  # the 2nd problem's 3rd method is being scored
    lines: list[str] = []

    def progress(line: str) -> None:
        lines.append(line)
        sandbox.armed = True

    report = run_bench(
        runner, [PROBLEM, second], agents, max_calls=12, budget_usd=0, sandbox=sandbox, on_progress=progress
    )
    assert (report["problems"], report["interrupted"]) == (1, {"after": 1, "of": 2})
    assert report["per_problem"]["ids"] == ["add"]
    assert all(m["problems"] == 1 for m in report["methods"].values())  # no row holds part of problem 2
    assert lines[-1].startswith("[2/2] add-again: interrupted; the report covers the 1 problems before it")
    # the same numbers as a run that asked for the first problem only (replayed from the response cache)
    alone = run_bench(runner, [PROBLEM], agents, max_calls=12, budget_usd=0, sandbox=ScriptedSandbox())

    def strip(methods: dict) -> dict:
        return {n: {k: v for k, v in m.items() if k != "wall_s"} for n, m in methods.items()}

    assert strip(report["methods"]) == strip(alone["methods"]) and "interrupted" not in alone
    assert "1 problems (interrupted after 1 of 2)" in table(report)
    assert "1 problems (interrupted after 1 of 2)" in markdown(report)


class OverlapMeter:
    """An ``adder_responder`` that also measures how many requests the server answers at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = self.most = 0

    def __call__(self, model: str, messages: list[dict[str, str]]) -> str:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        time.sleep(0.01)
        with self.lock:
            self.now -= 1
        return adder_responder(model, messages)


def _three_problems() -> list[Problem]:
    return [
        Problem(
            f"add-{i}", PROBLEM.statement + " " * i, PROBLEM.public_tests, tuple(list(PROBLEM.private_tests))
        )
        for i in range(3)
    ]


def _without_wall(report: dict) -> dict:
    return {n: {k: v for k, v in m.items() if k != "wall_s"} for n, m in report["methods"].items()}


def test_several_problems_in_flight_give_the_numbers_of_one_at_a_time(tmp_path) -> None:
    """``jobs=3`` against a fresh database (nothing cached) reports exactly what ``jobs=1`` reports, with a
    runner (store connection) per thread, while the server really answers several requests at once."""
    problems = _three_problems()
    meter = OverlapMeter()
    with FakeLLMServer(Script(meter)) as srv:
        agents = [parse_agent(f"openai:{srv.url}:model-{c}") for c in "ab"]

        def runner_on(db: str) -> DeepRunner:
            return sandboxed(make_runner(RunStore(tmp_path / db), [srv.url]))

        def bench(**kw: object) -> dict:
            return run_bench(
                kw.pop("runner"),  # type: ignore[arg-type]
                problems,
                agents,
                max_calls=6,
                budget_usd=0,
                sandbox=ScriptedSandbox(),
                methods_asked=ALL_METHODS,
                **kw,  # type: ignore[arg-type]
            )

        one = bench(runner=runner_on("one.db"))
        sent_one = len(srv.script.requests)
        assert meter.most == 1
        made: list[DeepRunner] = []

        def one_per_thread() -> DeepRunner:
            made.append(runner_on("many.db"))
            return made[-1]

        lines: list[str] = []
        main = runner_on("many.db")
        many = bench(runner=main, on_progress=lines.append, jobs=3, make_runner=one_per_thread)
        assert len(srv.script.requests) == 2 * sent_one  # nothing was cached for the second run
    assert meter.most > 1
    assert len(made) == 3 and all(r.store.conn is not main.store.conn for r in made)
    assert _without_wall(many) == _without_wall(one)
    assert many["per_problem"] == one["per_problem"] and many["problems"] == 3
    assert (one["jobs"], many["jobs"]) == (1, 3) and "interrupted" not in many
    assert sorted(line.split("]")[0] for line in lines) == ["[1/3", "[2/3", "[3/3"]
    assert lines[-1].endswith("(3 of 3 done)")


class InterruptOnTests(ScriptedSandbox):
    """Raises KeyboardInterrupt (as Ctrl-C in the main thread would end the wait) when ``tests`` (one
    problem's private tests, by identity) are scored."""

    def __init__(self, tests: tuple[TestCase, ...]) -> None:
        super().__init__()
        self.tests = tests

    def run_tests(self, code, tests, checker=None, timeout_s=None):  # type: ignore[no-untyped-def]
        if tests is self.tests:
            raise KeyboardInterrupt
        return super().run_tests(code, tests, checker, timeout_s)


def test_an_interrupt_with_problems_in_flight_reports_only_whole_problems_and_stops_the_threads(
    store,
) -> None:
    problems = _three_problems()
    lines: list[str] = []
    with FakeLLMServer(Script(adder_responder, delay_s=0.01)) as srv:
        agents = [parse_agent(f"openai:{srv.url}:model-{c}") for c in "ab"]
        report = run_bench(
            sandboxed(make_runner(store, [srv.url])),
            problems,
            agents,
            max_calls=6,
            budget_usd=0,
            sandbox=InterruptOnTests(problems[2].private_tests),  # the third starts when a first one ends
            methods_asked=ALL_METHODS,
            on_progress=lines.append,
            jobs=2,
            make_runner=lambda: sandboxed(make_runner(RunStore(store.path), [srv.url], consent=False)),
        )
        sent = len(srv.script.requests)
        time.sleep(0.2)
        assert len(srv.script.requests) == sent  # no thread is still asking
    ids = report["per_problem"]["ids"]
    assert "add-2" not in ids and ids and report["interrupted"] == {"after": len(ids), "of": 3}
    assert all(m["problems"] == len(ids) for m in report["methods"].values())  # whole problems only
    assert "interrupted; the report covers the" in lines[-1]


def _bench_requests(store: RunStore, budgets: list[int]) -> tuple[list[set[str]], list[dict]]:
    """Every method over two agents at each budget in turn, one store (so one response cache): the distinct
    request bodies each run sent to the server, and each run's per-method report."""
    sent: list[set[str]] = []
    reports: list[dict] = []
    with FakeLLMServer(Script(adder_responder)) as srv:
        runner = sandboxed(make_runner(store, [srv.url]))
        agents = [parse_agent(f"openai:{srv.url}:model-{c}") for c in "ab"]
        for budget in budgets:
            before = len(srv.script.requests)
            reports.append(
                run_bench(
                    runner,
                    [PROBLEM],
                    agents,
                    max_calls=budget,
                    budget_usd=0,
                    sandbox=ScriptedSandbox(),
                    methods_asked=ALL_METHODS,
                )["methods"]
            )
            sent.append({json.dumps(r["body"], sort_keys=True) for r in srv.script.requests[before:]})
    return sent, reports


def test_a_larger_budget_extends_the_smaller_one_so_its_cache_is_reused(store) -> None:
    """Why it matters: the 16-call table is run after the 8-call one on the same response cache; it costs only
    the calls beyond the 8 if no method's first calls depend on the budget. So: the small run's requests are
    a subset of the large run's, the large run after the small one sends exactly the rest, and reports what a
    fresh large run reports."""
    (small, rest), (at6, at12) = _bench_requests(store, [6, 12])
    fresh_store = RunStore()
    try:
        (fresh,), (fresh12,) = _bench_requests(fresh_store, [12])
    finally:
        fresh_store.close()
    assert small and rest and small <= fresh and rest == fresh - small
    outcome = {name: (m["calls"], m["ac"], m["pr"], m["stopped_by"]) for name, m in at12.items()}
    assert outcome == {name: (m["calls"], m["ac"], m["pr"], m["stopped_by"]) for name, m in fresh12.items()}
    # a method that was solved within 6 calls stops at the same place with 12; some methods need more
    solved6 = {name for name, m in at6.items() if m["stopped_by"] == {"solved": 1}}
    assert solved6 and all(at12[n]["calls"] == at6[n]["calls"] for n in solved6)
    assert {n for n, m in at12.items() if m["ac"] > at6[n]["ac"]}


def test_budget_rules_are_pure() -> None:
    assert search_budget(12, "sstar") == 11 and search_budget(12, "first") == 12
    assert search_budget(1, "sstar") == 1  # the 1-call zero-shot keeps its call
    assert min_attempt_calls(2, 3) == 6
    assert resample("exhausted", 2, 2) and resample("converged", 5, 1) and resample("rollouts", 1, 1)
    assert not resample("exhausted", 1, 2)  # the next attempt's root solve would not fit
    assert (
        not resample("solved", 9, 1) and not resample("max_calls", 9, 1) and not resample("budget_usd", 9, 1)
    )
    assert ended_by("rollouts", 0, 1) == "max_calls" and ended_by("exhausted", 3, 1) == "exhausted"
    assert ended_by("solved", 0, 1) == "solved"
    names = [m.name for m in methods_for([parse_agent("openai:http://x/v1:a")], 8)]
    assert names == [
        "zero-shot[openai:a]",
        "best-of-n[openai:a]",
        "mc-toa",
        "mc-toa+prune",
        "mc-toa+prune+refine",
    ]
    budgets = {m.name: m.max_calls for m in methods_for([parse_agent("openai:http://x/v1:a")], 8)}
    assert budgets["zero-shot[openai:a]"] == 1 and set(budgets.values()) == {1, 8}


def test_codecontests_rows_are_split_by_difficulty_and_the_record_keeps_each_private_rate(
    server, store
) -> None:
    """The paper splits CodeContests into easy (0–10) and hard (11–25); the report does it from its own
    per-problem record, so the bands add up to the table's rows."""
    runner = make_runner(store, [server.url])
    agents = [parse_agent(f"openai:{server.url}:model-{c}") for c in "ab"]
    rated = [
        replace(PROBLEM, id=pid, source="codecontests", difficulty=d)
        for pid, d in (("cf-easy", 9), ("cf-hard", 11), ("cf-unrated", None))
    ]
    report = run_bench(
        runner,
        rated,
        agents,
        max_calls=12,
        budget_usd=0,
        sandbox=ScriptedSandbox(),
        methods_asked=("zero-shot", "single"),
    )
    record = report["per_problem"]
    assert record["difficulty"] == [9, 11, None]
    assert record["private"]["zero-shot[openai:model-a]"] == [0.5, 0.5, 0.5]  # HALF passes one of two
    assert record["private"]["single[openai:model-a]"] == [1.0, 1.0, 1.0]
    split = report["by_difficulty"]
    assert [(band, b["problems"], b["difficulty"]) for band, b in split.items()] == [
        ("easy", 1, [9, 9]),
        ("hard", 1, [11, 11]),
        ("unrated", 1, None),
    ]
    assert split["hard"]["methods"]["zero-shot[openai:model-b]"] == {
        "accepted": 0,
        "ac": 0.0,
        "ac_ci95": [0.0, 79.35],
        "pr": 50.0,
        "pr_ci95": [50.0, 50.0],
    }
    assert split["easy"]["methods"]["single[openai:model-b]"]["ac"] == 100.0
    md = markdown(report | {"dataset": "codecontests-val"})
    assert (
        "By CodeContests difficulty" in md
        and "| easy (1, rating 9–9) AC % [95 % CI] | PR % [95 % CI] |" in md
    )
    # other datasets have no such split (their ratings, where any, mean something else)
    plain = run_bench(
        runner,
        [PROBLEM],
        agents,
        max_calls=12,
        budget_usd=0,
        sandbox=ScriptedSandbox(),
        methods_asked=("zero-shot",),
    )
    assert "by_difficulty" not in plain and "By CodeContests difficulty" not in markdown(plain)
