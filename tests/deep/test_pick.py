"""The final pick: ``first`` and S* (distinguishing inputs, sandbox runs, majority behaviour cluster) as
pure functions over scripted ``ask``/``probe``, the tolerant parsing of the model's inputs, the sandbox
probe, and S* inside one ``DeepRunner.run``."""

from __future__ import annotations

from collections.abc import Sequence

from bdc_assistant.deep.agents import parse_inputs
from bdc_assistant.deep.evaluate import SandboxEvaluator
from bdc_assistant.deep.llm import Budgets
from bdc_assistant.deep.pick import (
    Candidate,
    behaviour,
    choose,
    cluster,
    find_ties,
    first_pick,
    sstar,
    tree_candidates,
)
from bdc_assistant.deep.search import PublicProblem, Search, SearchConfig, StopSearch
from bdc_assistant.types import Status, TestCase, Verdict

from .conftest import make_runner
from .fakes import MarkerEvaluator, ScriptedTeam
from .httpfakes import GOOD, FakeLLMServer, Script
from .test_bench import ALT, PROBLEM, sandboxed, tie_responder

STDIO = PublicProblem("p", "add two numbers", (TestCase("1 2\n", "3\n"),))
CALL = PublicProblem("q", "def f(x): ...", (TestCase("assert f(1) == 2", kind="call"),), entry_point="f")

# behaviour of scripted programs on the distinguishing inputs "x" and "y"
TABLE = {"P1": ("ok:1", "ok:2"), "P2": ("ok:1", "ok:3"), "P3": ("ok:1", "ok:3"), "P4": ("ok:9", "ok:9")}


class Asker:
    def __init__(self, answer: str | Exception) -> None:
        self.answer = answer
        self.asked: list[tuple[str, ...]] = []

    def __call__(self, programs: Sequence[str]) -> str:
        self.asked.append(tuple(programs))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def probe(code: str, inputs: Sequence[str]) -> tuple[str, ...]:
    assert inputs == ("x\n", "y\n")
    return TABLE[code]


def cands(*specs: tuple[str, float]) -> list[Candidate]:
    return [Candidate(code, rate, f"c{i}") for i, (code, rate) in enumerate(specs)]


def test_ties_are_distinct_programs_at_the_best_rate_with_votes() -> None:
    ties = find_ties(cands(("P0", 0.5), ("P1", 1.0), ("P2", 1.0), ("P1", 1.0), ("", 1.0), ("P3", 1.0)), 8)
    assert (ties.programs, ties.votes, ties.pass_rate, ties.origins) == (
        ("P1", "P2", "P3"),
        (2, 1, 1),
        1.0,
        ("c1", "c2", "c5"),
    )
    assert find_ties(cands(("P1", 1.0), ("P2", 1.0), ("P3", 1.0)), 2).programs == ("P1", "P2")  # capped
    assert not find_ties(cands(("P1", 0.5), ("P1", 0.5)), 8).tied  # the same program twice is no tie
    assert first_pick([]).code == "" and first_pick(cands(("P0", 0.5), ("P1", 0.75))).code == "P1"


def test_cluster_and_choose_are_pure() -> None:
    sigs = [("a", "b"), ("a", "c"), ("a", "c"), ("z", "z")]
    assert cluster(sigs) == ((0,), (1, 2), (3,))
    assert choose(cluster(sigs), [1, 1, 1, 1]) == 1  # the 2-program cluster
    assert choose(cluster(sigs), [3, 1, 1, 1]) == 0  # votes, not distinct programs
    assert choose(((0,), (1,)), [1, 1]) == 0  # even: the earlier cluster
    assert behaviour(True, "pass", "3  \n\n") == "ok:3" and behaviour(False, "timeout", "3") == "timeout"


def test_sstar_majority_behaviour_wins_over_the_first_candidate() -> None:
    ask = Asker('["x", "y"]')
    # P1 is first; P2 and P3 are other code with the same behaviour: 2 votes to 1 on input "y"
    pick = sstar(STDIO, cands(("P1", 1.0), ("P2", 1.0), ("P3", 1.0)), ask=ask, probe=probe)
    assert (pick.code, pick.index, pick.used, pick.changed, pick.origin) == ("P2", 1, "sstar", True, "c1")
    assert pick.clusters == ((0,), (1, 2)) and pick.inputs == ("x\n", "y\n")
    assert ask.asked == [("P1", "P2", "P3")]


def test_sstar_two_tied_programs_the_one_written_more_often_wins() -> None:
    # two distinct programs differ on "y"; P2 was written by two candidates (two policies / attempts)
    pick = sstar(STDIO, cands(("P1", 1.0), ("P2", 1.0), ("P2", 1.0)), ask=Asker('["x", "y"]'), probe=probe)
    assert (pick.code, pick.changed, pick.tied) == ("P2", True, 2)
    # an even split keeps the earlier program, and so does agreement on every input
    even = sstar(STDIO, cands(("P1", 1.0), ("P2", 1.0)), ask=Asker('["x", "y"]'), probe=probe)
    assert (even.code, even.used, even.changed) == ("P1", "sstar", False)
    agree = sstar(STDIO, cands(("P2", 0.5), ("P3", 0.5)), ask=Asker('["x", "y"]'), probe=probe)
    assert (agree.code, agree.clusters) == ("P2", ((0, 1),))


def test_sstar_malformed_answer_falls_back_to_first_counted_as_malformed() -> None:
    for answer in ("I cannot help with that.", "[]", '{"inputs": [1, null]}', "```json\n[{}]\n```"):
        ask = Asker(answer)
        pick = sstar(
            STDIO if answer != '{"inputs": [1, null]}' else CALL,
            cands(("P1", 1.0), ("P2", 1.0)),
            ask=ask,
            probe=probe,
        )
        assert (pick.code, pick.used, pick.fallback, pick.mode) == ("P1", "first", "malformed", "sstar"), (
            answer
        )
        assert len(ask.asked) == 1  # the call was made (and is counted by the caller)


def test_sstar_spends_nothing_without_a_tie_and_falls_back_before_calling_when_it_cannot_compare() -> None:
    ask = Asker('["x", "y"]')
    alone = sstar(STDIO, cands(("P1", 1.0), ("P2", 0.5), ("P1", 1.0)), ask=ask, probe=probe)
    assert (alone.code, alone.tied, alone.fallback, alone.used) == ("P1", 1, "", "first") and not ask.asked
    tied = cands(("P1", 1.0), ("P2", 1.0))
    checker = PublicProblem("c", "any valid answer", STDIO.public_tests, checker="float")
    assert sstar(checker, tied, ask=ask, probe=probe).fallback == "checker"
    assert sstar(STDIO, tied, ask=None, probe=probe).fallback == "no_agent"
    assert sstar(STDIO, tied, ask=ask, probe=None).fallback == "no_sandbox"
    assert not ask.asked
    budget = sstar(STDIO, tied, ask=Asker(StopSearch("max_calls")), probe=probe)
    assert (budget.code, budget.fallback) == ("P1", "budget")
    failed = sstar(STDIO, tied, ask=Asker(StopSearch("provider_server", "boom")), probe=probe)
    assert failed.fallback == "call:provider_server"


def test_parse_inputs_is_tolerant_and_validates_call_expressions() -> None:
    assert parse_inputs('Here:\n```json\n["1 2", "3 4\\n",]\n```', STDIO, 5) == ("1 2\n", "3 4\n")
    assert parse_inputs('[{"input": "5 5"}, {"input": "5 5"}, 7]', STDIO, 5) == ("5 5\n", "7\n")
    assert parse_inputs('{"inputs": ["1 1", "2 2", "3 3"]}', STDIO, 2) == ("1 1\n", "2 2\n")
    assert parse_inputs("['f(0)', 'f([1, 2], 3)', 'f(', 'import os']", CALL, 5) == ("f(0)", "f([1, 2], 3)")
    assert parse_inputs('["f(", 3]', CALL, 5) is None
    assert parse_inputs("no list here", STDIO, 5) is None


def test_probe_runs_in_the_sandbox_stdin_or_printed_call() -> None:
    class Box:
        def __init__(self) -> None:
            self.runs: list[tuple[str, str]] = []

        def run(self, code: str, stdin: str = "", timeout_s: float | None = None) -> Verdict:
            self.runs.append((code, stdin))
            if "boom" in code + stdin:
                return Verdict(Status.RUNTIME_ERROR, stdout="partial")
            return Verdict(Status.PASS, stdout="42 \n")

    box = Box()
    assert SandboxEvaluator(box, STDIO).probe("print(42)\n", ["1 2\n", "boom\n"]) == (
        "ok:42",
        "runtime_error",
    )
    assert box.runs == [("print(42)\n", "1 2\n"), ("print(42)\n", "boom\n")]
    box.runs.clear()
    assert SandboxEvaluator(box, CALL).probe("def f(x):\n    return 42\n", ["f(1)"]) == ("ok:42",)
    assert box.runs == [("def f(x):\n    return 42\n\nprint(repr(f(1)))\n", "")]


def test_tree_candidates_follow_the_first_rule_of_the_search() -> None:
    team = ScriptedTeam(names=("A", "B"), rates={"": {"A": 1.0, "B": 1.0}})
    out = Search(STDIO, team, MarkerEvaluator(), SearchConfig(rollouts=2)).run()
    found = tree_candidates(out.tree)
    assert [c.origin for c in found] == ["a0/n0/A/s0", "a0/n0/B/s0"] and [c.node for c in found] == [0, 0]
    first = first_pick(found)
    assert (first.code, first.node, first.tied) == (out.best_code, out.best_node, 2)


def test_sstar_inside_one_run_keeps_a_call_back_and_changes_the_answer(store) -> None:
    with FakeLLMServer(Script(tie_responder('["9 1"]'))) as srv:
        runner = sandboxed(make_runner(store, [srv.url]))
        agents = [f"openai:{srv.url}:model-{c}" for c in "abc"]
        res = runner.run(PROBLEM, agents, Budgets(max_calls=4, budget_usd=0), pick="sstar")
        first = runner.run(PROBLEM, agents, Budgets(max_calls=4, budget_usd=0), pick="first")
    assert (res.best_code, res.calls, res.stopped_by, res.best_node) == (GOOD, 4, "solved", 0)
    assert res.pick["used"] == "sstar" and res.pick["changed"] and res.pick["tied"] == 3
    assert res.pick["clusters"] == [[0], [1, 2]] and res.pick["calls"] == 1
    assert store.get_run(res.run_id).result["pick"]["origin"] == "a0/n0/openai:model-b/s0"
    assert store.get_run(res.run_id).config["pick"]["mode"] == "sstar"
    assert (first.best_code, first.calls, first.pick["used"]) == (ALT, 3, "first")


def test_sstar_reserve_leaves_the_search_one_call_short(store) -> None:
    with FakeLLMServer(Script(tie_responder('["9 1"]'))) as srv:
        runner = sandboxed(make_runner(store, [srv.url]))
        agents = [f"openai:{srv.url}:model-{c}" for c in "abc"]
        res = runner.run(PROBLEM, agents, Budgets(max_calls=3, budget_usd=0), pick="sstar")
    # three agents need 3 calls for the root solve; 2 are left to the search: nothing runs, nothing is spent
    assert (res.calls, res.stopped_by, res.best_code, res.pick["tied"]) == (0, "max_calls", "", 0)
