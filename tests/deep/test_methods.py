"""Golden traces of the paper's Table-1 baselines (:mod:`bdc_assistant.deep.methods`) on scripted policies:
the exact call sequence and final pick of each, the call budget never exceeded, the negative control that
pins what makes each method itself, and every method through ``run_bench`` at an equal budget."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from bdc_assistant.deep.agents import LLMTeam, parse_value, parse_verdicts, with_notes
from bdc_assistant.deep.bench import (
    ALL_METHODS,
    BASELINES,
    DEFAULT_METHODS,
    Method,
    method_names,
    methods_for,
    resample,
    run_bench,
    run_method,
    table,
)
from bdc_assistant.deep.methods import BlockVerdict, first_batch, make_search
from bdc_assistant.deep.providers.base import ChatResponse
from bdc_assistant.deep.providers.presets import parse_agent
from bdc_assistant.deep.search import Evaluation, Failure, PublicProblem, SearchConfig, SearchOutcome, State
from bdc_assistant.errors import BdcError, ConfigError
from bdc_assistant.store.runs import RunStore
from bdc_assistant.types import Problem, TestCase

from .conftest import make_runner
from .fakes import MarkerEvaluator, ScriptedTeam
from .httpfakes import BAD, GOOD, HALF, FakeLLMServer, Script
from .test_bench import PROBLEM, ScriptedSandbox, sandboxed

P = PublicProblem(id="p1", statement="add two numbers", public_tests=(TestCase("1 2", "3"),))


def run(method: str, team: ScriptedTeam, evaluator: Any = None, **cfg: Any) -> SearchOutcome:
    search = make_search(P, team, evaluator or MarkerEvaluator(), SearchConfig(method=method, **cfg))
    return search.run()


def kinds(team: ScriptedTeam) -> list[tuple[str, tuple[str, ...]]]:
    return [(kind, thoughts) for kind, _, thoughts in team.calls]


def seen(team: ScriptedTeam, kind: str) -> list[dict[str, Any]]:
    return [args for k, args in team.seen if k == kind]


# ---- the scenarios: (method, team factory, config, calls of the full run) ------------------------------


def reflexion_team() -> ScriptedTeam:
    return ScriptedTeam(("A",), rates={"": {"A": 0.25}}, repairs=[0.5, 1.0])


def tot_team() -> ScriptedTeam:
    values = {
        "A1.0": 0.2,
        "A1.1": 0.9,
        "A1.1|A2.0": 0.3,
        "A1.1|A2.1": 0.8,
        "A1.0|A2.0": 0.8,
        "A1.0|A2.1": 0.1,
    }
    return ScriptedTeam(("A",), rates={"A2.1": {"A": 0.5}, "A2.0": {"A": 0.75}}, values=values)


def rap_team() -> ScriptedTeam:
    # the LLM likes A1.0 (0.9) whose program fails every test; it dislikes A2.0 (0.1), which passes 3 of 4
    rates = {"": {"A": 0.25}, "A1.0": {"A": 0.0}, "A2.0": {"A": 0.75}}
    return ScriptedTeam(("A",), rates=rates, values={"A1.0": 0.9, "A2.0": 0.1})


def lats_team() -> ScriptedTeam:
    rates = {"": {"A": 0.25}, "A1.0": {"A": 0.5}, "A2.0": {"A": 1.0}}
    return ScriptedTeam(("A",), rates=rates, values={"A1.0": 0.8})


def rethink_team() -> ScriptedTeam:
    rates = {"": {"A": 0.25}, "A1.0": {"A": 0.5}, "A1.0'": {"A": 0.75}, "A2.0": {"A": 1.0}}
    return ScriptedTeam(("A",), rates=rates)


SCENARIOS: list[tuple[str, Callable[[], ScriptedTeam], dict[str, Any], int]] = [
    ("reflexion", reflexion_team, {"rollouts": 5}, 5),
    ("ldb", reflexion_team, {"rollouts": 5}, 5),
    ("tot", tot_team, {"max_depth": 2, "beam": 2}, 12),
    ("rap", rap_team, {"rollouts": 2}, 7),
    ("lats", lats_team, {"rollouts": 3}, 9),
    ("rethinkmcts", rethink_team, {"rollouts": 3}, 8),
]


# ---- golden traces and negative controls ---------------------------------------------------------------


def test_reflexion_reflects_then_retries_with_the_memory() -> None:
    team = reflexion_team()
    evaluator = MarkerEvaluator()
    out = run("reflexion", team, evaluator, rollouts=5)
    assert kinds(team) == [("solve", ()), ("reflect", ()), ("repair", ()), ("reflect", ()), ("repair", ())]
    assert (out.stopped_by, out.best_node, out.public_pass_rate) == ("solved", 2, 1.0)
    assert out.best_code == "# A repair1\nPR=1.0"
    t = out.tree
    assert [n.thoughts for n in t.nodes.values()] == [(), ("reflection 1",), ("reflection 1", "reflection 2")]
    assert [n.pr for n in t.nodes.values()] == [0.25, 0.5, 1.0] and t.rollout == 2
    # negative control: the retry sees the previous reflection (the whole memory, most recent last), and
    # each reflection is about the program just written and its failing public tests
    repairs, reflects = seen(team, "repair"), seen(team, "reflect")
    assert repairs[0]["notes"] == ("reflection 1",)
    assert repairs[1]["notes"] == ("reflection 1", "reflection 2")
    assert repairs[1]["code"] == reflects[1]["code"] == "# A repair0\nPR=0.5"
    assert [f.index for f in reflects[1]["failures"]] == [2, 3]
    assert not evaluator.traced  # Reflexion never traces


def test_ldb_debugs_the_trace_of_a_failing_test_block_by_block() -> None:
    team = reflexion_team()
    evaluator = MarkerEvaluator()
    out = run("ldb", team, evaluator, rollouts=5)
    assert kinds(team) == [("solve", ()), ("debug", ()), ("repair", ()), ("debug", ()), ("repair", ())]
    assert (out.stopped_by, out.best_code, out.public_pass_rate) == ("solved", "# A repair1\nPR=1.0", 1.0)
    # negative control: the debug call gets the trace of the failing test it was given, of the program it
    # debugs, and the fix sees that trace and the block verdicts
    debugs, repairs = seen(team, "debug"), seen(team, "repair")
    root_code = out.tree.root.solutions[0].code
    assert evaluator.traced == [root_code, "# A repair0\nPR=0.5"]
    for debug, repair, test in zip(debugs, repairs, evaluator.traced_tests, strict=True):
        assert debug["failure"].index == test and debug["trace"] == f"[block 0] test {test}"
        assert repair["failures"] == (debug["failure"],)
        assert f"[block 0] test {test}" in repair["notes"][0]
        assert "[block 1] WRONG: wrong sum" in repair["notes"][1]
    assert evaluator.traced_tests[0] in (1, 2, 3) and evaluator.traced_tests[1] in (2, 3)  # failing ones
    assert out.tree.nodes[1].thoughts == (
        f"debug test {evaluator.traced_tests[0]}: block 1 wrong: wrong sum",
    )


def test_tot_keeps_the_beam_by_llm_value_and_solves_the_best_leaves() -> None:
    team = tot_team()
    evaluator = MarkerEvaluator()
    out = run("tot", team, evaluator, max_depth=2, beam=2)
    assert kinds(team) == [
        ("solve", ()),
        ("propose", ()),
        ("evaluate", ("A1.0",)),
        ("evaluate", ("A1.1",)),
        ("propose", ("A1.1",)),  # best first
        ("propose", ("A1.0",)),
        ("evaluate", ("A1.1", "A2.0")),
        ("evaluate", ("A1.1", "A2.1")),
        ("evaluate", ("A1.0", "A2.0")),
        ("evaluate", ("A1.0", "A2.1")),
        ("solve", ("A1.1", "A2.1")),  # 0.8, node 4
        ("solve", ("A1.0", "A2.0")),  # 0.8, node 5 (tie: earlier node first)
    ]
    assert (out.stopped_by, out.best_node, out.public_pass_rate) == ("rollouts", 5, 0.75)
    t = out.tree
    assert [t.nodes[i].status for i in (3, 6)] == ["exhausted", "exhausted"]  # outside the beam
    assert not t.nodes[3].solutions and not t.nodes[6].solutions
    # negative control: ToT's values are the LLM's, on plans (no program), and no test ran before the leaves
    assert all(args["code"] == "" for args in seen(team, "evaluate"))
    assert len(evaluator.evaluated) == 3
    assert t.nodes[4].returns == [0.8] and t.nodes[3].returns == [0.3]


def test_rap_rewards_are_self_evaluated_and_tests_only_pick_the_final_program() -> None:
    team = rap_team()
    calls_at_evaluation: list[int] = []

    class Watching(MarkerEvaluator):
        def evaluate(self, code: str) -> Evaluation:
            calls_at_evaluation.append(len(team.calls))
            return super().evaluate(code)

    out = run("rap", team, Watching(), rollouts=2)
    assert kinds(team) == [
        ("solve", ()),
        ("propose", ()),
        ("solve", ("A1.0",)),
        ("evaluate", ("A1.0",)),
        ("propose", ("A1.0",)),  # PUCB follows the LLM's reward (0.9) into the branch whose tests fail
        ("solve", ("A1.0", "A2.0")),
        ("evaluate", ("A1.0", "A2.0")),
    ]
    # negative control: the reward never ran a test; every program is scored once, after the search
    assert calls_at_evaluation == [7, 7, 7]
    assert [args["code"] for args in seen(team, "evaluate")] == [
        "# A s0 at A1.0\nPR=0.0",
        "# A s0 at A1.0|A2.0\nPR=0.75",
    ]
    t = out.tree
    assert t.nodes[1].returns == pytest.approx([0.81, 0.09 * 0.9])  # γ·0.9, then γ²·0.1 from node 3
    assert (out.stopped_by, out.best_node, out.public_pass_rate) == ("rollouts", 3, 0.75)
    assert [t.nodes[i].pr for i in (0, 1, 3)] == [0.25, 0.0, 0.75]


def test_rap_scores_its_programs_even_when_the_budget_stops_it() -> None:
    team = rap_team()
    team.max_calls = 4
    out = run("rap", team, rollouts=2)
    assert out.stopped_by == "max_calls" and len(team.calls) == 4
    assert [n.pr for n in out.tree.nodes.values() if n.simulated] == [0.25, 0.0]
    assert out.public_pass_rate == 0.25 and out.best_node == 0


def test_lats_mixes_test_and_llm_value_and_feeds_reflections_to_later_expansions() -> None:
    team = lats_team()
    out = run("lats", team, rollouts=3)
    assert kinds(team) == [
        ("solve", ()),
        ("evaluate", ()),
        ("reflect", ()),
        ("propose", ()),
        ("solve", ("A1.0",)),
        ("evaluate", ("A1.0",)),
        ("reflect", ("A1.0",)),
        ("propose", ("A1.0",)),
        ("solve", ("A1.0", "A2.0")),  # passes: worth 1, no LLM value, no reflection, early stop
    ]
    assert (out.stopped_by, out.best_node, out.public_pass_rate) == ("solved", 3, 1.0)
    t = out.tree
    # value = 0.5·LLM + 0.5·PR: root 0.5·0.5 + 0.5·0.25 = 0.375, node 1 0.5·0.8 + 0.5·0.5 = 0.65 (γ-discounted)
    assert t.root.returns[0] == pytest.approx(0.9 * 0.375)
    assert t.nodes[1].returns[0] == pytest.approx(0.9 * 0.65)
    assert t.nodes[3].returns == [1.0]
    # negative control: expansions and simulations after a failed rollout see its reflection
    proposes, solves = seen(team, "propose"), seen(team, "solve")
    assert [p["notes"] for p in proposes] == [("reflection 1",), ("reflection 1", "reflection 2")]
    assert [s["notes"] for s in solves] == [(), ("reflection 1",), ("reflection 1", "reflection 2")]
    assert [f.index for f in seen(team, "reflect")[1]["failures"]] == [2, 3]


def test_rethinkmcts_rethinks_a_failing_thought_in_place_from_block_feedback() -> None:
    team = rethink_team()
    evaluator = MarkerEvaluator()
    out = run("rethinkmcts", team, evaluator, rollouts=3)
    assert kinds(team) == [
        ("solve", ()),
        ("propose", ()),
        ("solve", ("A1.0",)),
        ("debug", ("A1.0",)),
        ("regenerate", ()),
        ("solve", ("A1.0'",)),  # the rethought node fails too (0.75) but is not rethought again
        ("propose", ("A1.0'",)),
        ("solve", ("A1.0'", "A2.0")),
    ]
    assert (out.stopped_by, out.best_node, out.public_pass_rate) == ("solved", 4, 1.0)
    t = out.tree
    assert t.root.children == [3, 2]  # node 3 took node 1's slot
    assert (t.nodes[1].status, t.nodes[1].replaced_by, t.nodes[3].refined_from) == ("replaced", 3, 1)
    assert (t.refines_total, t.refines_effective, t.refines_failed) == (1, 1, 0)
    # negative control: the rethink sees the failing test's block trace and the LLM's verdicts, and the
    # children of a node that still fails are proposed with its feedback (failures and trace)
    (debug,) = seen(team, "debug")
    assert debug["failure"].index == 2 and debug["trace"] == "[block 0] test 2"
    (regen,) = seen(team, "regenerate")
    assert regen["ill_thought"] == "A1.0"
    assert "[block 0] test 2" in regen["summary"] and "[block 1] WRONG: wrong sum" in regen["summary"]
    proposes = seen(team, "propose")
    assert "'in1'" in proposes[0]["notes"][0]  # the root's failures (no trace, no rethink at the root)
    assert "[block 0] test 3" in proposes[1]["notes"][0]


@pytest.mark.parametrize(("method", "factory", "cfg", "full"), SCENARIOS, ids=[s[0] for s in SCENARIOS])
def test_no_method_exceeds_its_call_budget(
    method: str, factory: Callable[[], ScriptedTeam], cfg: dict[str, Any], full: int
) -> None:
    for budget in range(1, full + 2):
        team = factory()
        team.max_calls = budget
        out = run(method, team, **cfg)
        assert len(team.calls) <= budget, (method, budget)
        if budget < full:
            assert out.stopped_by == "max_calls", (method, budget)
        else:
            assert len(team.calls) == full and out.stopped_by != "max_calls", (method, budget)
        assert out.best_code  # the direct solve is always the first call: never without a program


@pytest.mark.parametrize("method", ["reflexion", "ldb", "lats", "rethinkmcts", "rap"])
def test_an_iteration_cap_ends_with_a_stop_the_bench_resamples(method: str) -> None:
    team = ScriptedTeam(("A",), default_rate=0.25)  # nothing ever passes
    out = run(method, team, rollouts=1)
    assert out.stopped_by == "rollouts" and resample(out.stopped_by, 10, first_batch(SearchConfig(), 1))
    assert first_batch(SearchConfig(method=method), 1) == 1 and first_batch(SearchConfig(samples=2), 3) == 6


def test_baselines_are_single_agent_and_names_are_checked() -> None:
    with pytest.raises(ConfigError, match="single-agent"):
        run("reflexion", ScriptedTeam(("A", "B")))
    with pytest.raises(ConfigError, match="Unknown search method") as err:
        run("beam-me-up", ScriptedTeam(("A",)))
    assert isinstance(err.value, BdcError)


# ---- the LLM team's new calls: prompts, tolerant parsing, fallbacks ------------------------------------


class FakeGateway:
    """Answers every call with the next scripted text (no HTTP); records the requests."""

    def __init__(self, answers: list[str]) -> None:
        from bdc_assistant.deep.llm import Meter

        self.agents = {"openai:m": parse_agent("openai:http://127.0.0.1:1/v1:m")}
        self.meter = Meter()
        self.answers = answers
        self.requests: list[Any] = []

    def batch(self, calls: list[Any]) -> list[ChatResponse]:
        self.requests += calls
        return [ChatResponse(self.answers.pop(0), 1, 1) for _ in calls]


def llm_team(answers: list[str]) -> tuple[LLMTeam, FakeGateway]:
    gateway = FakeGateway(answers)
    return LLMTeam(gateway, ["openai:m"], max_tokens=64, temperature=0.0), gateway  # type: ignore[arg-type]


def test_llm_team_calls_parse_tolerantly_and_fall_back_on_malformed_answers() -> None:
    fail = Failure(1, "6 7", "13", "0", "wrong")
    state = State(P, ("add them",), ("openai:m",), ("earlier lesson",))
    team, gw = llm_team(
        [
            '```json\n{"score": 0.8, "explanation": "fine",}\n```',
            "I think it is good.",  # no number: neutral
            'Verdicts: [{"block": 0, "correct": "yes"}, {"block": "x", "verdict": "wrong", "reason": "off"}]',
            "no json here",
            "It adds when it should multiply.",
            "",  # empty reflection: the defined fallback
            "```python\nprint(1)\n```",
            "Sorry, no code.",  # no code: the previous program
        ]
    )
    assert team.evaluate_state("openai:m", state, "print(0)\n") == 0.8
    assert team.evaluate_state("openai:m", state) == 0.5
    assert team.debug_blocks("openai:m", state, "x", fail, "[block 0]") == [
        BlockVerdict(0, True, ""),
        BlockVerdict(1, False, "off"),
    ]
    assert team.debug_blocks("openai:m", state, "x", fail, "[block 0]") == []
    assert team.reflect("openai:m", state, "x", [fail]) == "It adds when it should multiply."
    assert "failed 1 public test" in team.reflect("openai:m", state, "x", [fail])
    assert team.repair("openai:m", state, "old\n", [fail], ["note A", "note B"]) == "print(1)\n"
    assert team.repair("openai:m", state, "old\n", [fail], ["note A"]) == "old\n"
    assert gw.meter.parse_failures == 4
    phases = [c.phase for c in gw.requests]
    assert phases == ["evaluate", "evaluate", "debug", "debug", "reflect", "reflect", "repair", "repair"]
    prompts = [c.request.messages[-1][1] for c in gw.requests]
    assert "print(0)" in prompts[0] and "plan and program" in prompts[0] and "```python" not in prompts[1]
    assert "[block 0]" in prompts[2] and "'6 7'" in prompts[2]
    assert "note A" in prompts[6] and "note B" in prompts[6] and "old" in prompts[6]


def test_notes_reach_propose_and_solve_but_leave_mc_toa_prompts_untouched() -> None:
    bare = State(P, ("add them",), ("openai:m",))
    assert with_notes("prompt\n", bare) == "prompt\n"
    team, gw = llm_team(["[]", "```python\nprint(3)\n```", "[]"])
    team.propose(State(P, (), (), ("use ints",)), 2)
    team.solve(State(P, (), (), ("use ints",)), 1)
    team.propose(State(P, (), ()), 2)
    prompts = [c.request.messages[-1][1] for c in gw.requests]
    assert "Lessons from earlier failed attempts:\n- use ints" in prompts[0]
    assert "Lessons from earlier failed attempts:\n- use ints" in prompts[1]
    assert "Lessons" not in prompts[2]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('{"score": 0.3}', 0.3),
        ("{'Evaluation': -0.5, 'explanation': 'far off'}", 0.0),
        ("Score: 7/10", 0.7),
        ("0.95", 0.95),
        ("no idea", None),
        ('{"score": 1000}', None),
    ],
)
def test_parse_value(text: str, value: float | None) -> None:
    assert parse_value(text) == value


def test_parse_verdicts_malformed_is_none() -> None:
    assert parse_verdicts("[1, 2, 3]") is None and parse_verdicts("") is None
    assert parse_verdicts('{"blocks": [{"block": 2, "correct": false, "explanation": "e"}]}') == [
        BlockVerdict(2, False, "e")
    ]


# ---- through the bench --------------------------------------------------------------------------------


SECOND = Problem(
    "add-again",
    "Read a and b, print a+b. (second)",
    public_tests=PROBLEM.public_tests,
    private_tests=PROBLEM.private_tests,
)


def _fence(code: str) -> str:
    return "```python\n" + code + "```"


def baseline_responder(model: str, messages: list[dict[str, str]]) -> str:
    """Problem 1: the direct solve writes HALF, a plan that adds writes GOOD, one that subtracts BAD; a
    repair writes GOOD. Problem 2 ("(second)"): the direct solve writes GOOD."""
    user = messages[-1]["content"]
    if "Propose" in user:
        return json.dumps(
            [
                {"thought": "subtract b from a", "reasonableness": 0.7},
                {"thought": "add a and b", "reasonableness": 0.3},
            ]
        )
    if "self-reflection" in user:
        return "It mishandles big numbers; the next attempt must add a and b."
    if "Write an improved" in user:
        return _fence(GOOD)
    if "How likely" in user:
        return '{"score": 0.6, "explanation": "plausible"}'
    if "block by block" in user:
        return '[{"block": 0, "correct": false, "explanation": "wrong branch"}]'
    if "Write a better replacement" in user:
        return "Add a and b."
    if "Write the complete Python 3 program" in user:
        if "(second)" in user:
            return _fence(GOOD)
        plan = user.split("Follow this plan:")[-1].split("Write the complete")[0].lower()
        return _fence(GOOD if "add" in plan else BAD if "subtract" in plan else HALF)
    return "?"


def test_every_table_1_method_through_run_bench_at_an_equal_budget(store: RunStore) -> None:
    with FakeLLMServer(Script(baseline_responder)) as srv:
        runner = sandboxed(make_runner(store, [srv.url]))
        agents = [parse_agent(f"openai:{srv.url}:model-a")]
        report = run_bench(
            runner,
            [PROBLEM, SECOND],
            agents,
            max_calls=12,
            budget_usd=0,
            sandbox=ScriptedSandbox(),
            methods_asked=ALL_METHODS,
        )
    m = report["methods"]
    a = "openai:model-a"
    assert list(m) == [
        f"zero-shot[{a}]",
        f"best-of-n[{a}]",
        *(f"{name}[{a}]" for name in BASELINES),
        "mc-toa",
        "mc-toa+prune",
        "mc-toa+prune+refine",
    ]
    got = {name: (r["ac"], r["calls"], r["unspent"], r["stopped_by"]) for name, r in m.items()}
    # problem 1: the direct solve is HALF (private PR 0.5), every baseline finds GOOD; problem 2: GOOD at
    # once (solved in 1 call, 11 unspent) -- except RAP, which runs no test during its search, so it spends
    # the whole budget on both problems (and still picks GOOD by public tests at the end)
    assert got[f"zero-shot[{a}]"][0] == got[f"best-of-n[{a}]"][0] == 50.0
    assert got[f"ldb[{a}]"] == (100.0, 3 + 1, 9 + 11, {"solved": 2})  # solve, debug, repair
    assert got[f"reflexion[{a}]"] == (100.0, 3 + 1, 9 + 11, {"solved": 2})  # solve, reflect, repair
    # ToT: solve, propose + 2 evaluations, 2 proposes (a proposal repeating a plan step is dropped as an
    # echo, so one child each) + 2 evaluations, then the first leaf ("subtract", "add") is GOOD
    assert got[f"tot[{a}]"] == (100.0, 9 + 1, 3 + 11, {"solved": 2})
    assert got[f"rap[{a}]"] == (100.0, 24, 0, {"max_calls": 2})
    # LATS: solve, value, reflect; "subtract" (BAD): propose, solve, value, reflect; its child "add": 2 more
    assert got[f"lats[{a}]"] == (100.0, 9 + 1, 3 + 11, {"solved": 2})
    # RethinkMCTS: solve, propose, "subtract" (BAD), debug, regenerate ("Add a and b."), solve (GOOD)
    assert got[f"rethinkmcts[{a}]"] == (100.0, 6 + 1, 6 + 11, {"solved": 2})
    assert m[f"rethinkmcts[{a}]"]["refined"] == 1
    for name, r in m.items():
        assert r["calls"] + r["unspent"] == r["budget"] * 2, name  # every call is spent or shown unspent
        assert r["tokens_per_problem"] > 0 and r["ties"] == 0, name
    text = table(report)
    assert f"rethinkmcts[{a}]" in text and "Table-1 baselines" in text and "unspent" in text


def stubborn_responder(model: str, messages: list[dict[str, str]]) -> str:
    """Nothing ever passes: the direct solve is HALF, every other program BAD."""
    user = messages[-1]["content"]
    if "Propose" in user:
        step = user.count("Step ")  # distinct per depth, or the team drops them as echoes of the plan
        return json.dumps([{"thought": f"subtract them ({step}.{i})", "reasonableness": 0.5} for i in (0, 1)])
    if "How likely" in user:
        return '{"score": 0.5}'
    if "Write the complete Python 3 program" in user and "Follow this plan:\n(solve it directly)" in user:
        return _fence(HALF)
    if "Write the complete" in user or "Write an improved" in user:
        return _fence(BAD)
    return "Subtract them."


def test_a_baseline_that_ends_early_resamples_until_the_budget_is_spent(store: RunStore) -> None:
    with FakeLLMServer(Script(stubborn_responder)) as srv:
        runner = make_runner(store, [srv.url], rollouts=8)
        agent = parse_agent(f"openai:{srv.url}:model-a")
        # ToT: a full BFS is 12 calls and ends by itself ("rollouts"): 30 calls = 2 BFS + a third cut short
        # (each a new attempt: seed = attempt, so the response cache does not replay the last one)
        tot = Method("tot[a]", (agent,), BASELINES["tot"], 30)
        r = run_method(runner, PROBLEM, tot, budget_usd=0, pick="first", sandbox=ScriptedSandbox())
        assert (r.attempts, r.calls, r.unspent, r.stopped_by) == (3, 30, 0, "max_calls")
        assert [store.get_run(i).stopped_by for i in r.run_ids] == ["rollouts", "rollouts", "max_calls"]
        assert r.pick.code == HALF and r.pick.origin == "a0/n0/openai:model-a/s0"
        # Reflexion: 8 iterations = 1 + 2·8 = 17 calls, then a new attempt with the 3 left
        refl = Method("reflexion[a]", (agent,), BASELINES["reflexion"], 20)
        r = run_method(runner, PROBLEM, refl, budget_usd=0, pick="first", sandbox=ScriptedSandbox())
        assert (r.attempts, r.calls, r.unspent, r.stopped_by) == (2, 20, 0, "max_calls")
        assert store.get_run(r.run_ids[0]).stopped_by == "rollouts"


def test_methods_option_selects_rows_in_table_order() -> None:
    agents = [parse_agent("openai:http://x/v1:a"), parse_agent("openai:http://x/v1:b")]
    assert method_names(None) == DEFAULT_METHODS
    assert method_names("tot, reflexion,mc-toa") == ("reflexion", "tot", "mc-toa")
    assert method_names("all") == ALL_METHODS and set(method_names("default,ldb")) == {
        *DEFAULT_METHODS,
        "ldb",
    }
    with pytest.raises(ConfigError, match="Unknown method"):
        method_names("reflexion,magic")
    names = [m.name for m in methods_for(agents, 8, method_names("reflexion,lats"))]
    assert names == ["reflexion[openai:a]", "reflexion[openai:b]", "lats[openai:a]", "lats[openai:b]"]
    assert [m.name for m in methods_for(agents, 8)] == [
        m.name for m in methods_for(agents, 8, DEFAULT_METHODS)
    ]
    assert {m.max_calls for m in methods_for(agents, 8, ALL_METHODS) if "zero-shot" not in m.name} == {8}
