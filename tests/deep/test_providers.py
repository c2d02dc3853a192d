"""Providers over real HTTP (a local fake server): retries, fail-fast auth, stopped_by, Anthropic path, budgets."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bdc_assistant.deep.llm import Budgets
from bdc_assistant.deep.providers.presets import Price, parse_agent

from .conftest import ADD, make_runner
from .httpfakes import HALF, FakeLLMServer, Script


def agents(srv: FakeLLMServer, n: int = 2) -> list[str]:
    return [f"openai:{srv.url}:model-{c}" for c in "ab"[:n]]


def test_429_500_timeout_malformed_are_retried_then_succeed(server, store) -> None:
    server.script.failures = ["429", "500", "slow", "malformed"]
    server.script.slow_s = 1.5
    runner = make_runner(store, [server.url], timeout_s=0.5, max_retries=4)
    res = runner.run(ADD, agents(server, 1), Budgets(max_calls=20, budget_usd=0))
    assert res.meter["retries"] == 4
    # after the retries the scripted run goes on as without failures: the direct solve (HALF), a
    # "subtract" plan (BAD) that is ill and refined into a "sum" plan (GOOD)
    assert (res.stopped_by, res.calls, res.public_pass_rate) == ("solved", 6, 1.0)
    assert (res.nodes, res.pruned, res.refined) == (4, 0, 1)


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        ("500", "provider_server"),
        ("429", "provider_rate_limit"),
        ("malformed", "provider_malformed"),
        ("slow", "provider_timeout"),
    ],
)
def test_exhausted_retries_end_the_run_with_a_clear_stopped_by(server, store, failure, reason) -> None:
    server.script.failures = [failure] * 50
    server.script.slow_s = 1.0
    runner = make_runner(store, [server.url], timeout_s=0.3, max_retries=2)
    res = runner.run(ADD, agents(server, 1), Budgets(max_calls=20, budget_usd=0))
    assert res.stopped_by == reason
    assert res.calls == 0 and res.best_code == ""
    assert len(server.script.requests) == 3  # first try + 2 retries
    row = store.get_run(res.run_id)
    assert row.status == "finished" and row.stopped_by == reason


def test_auth_error_fails_fast(server, store) -> None:
    server.script.failures = ["401"] * 10
    runner = make_runner(store, [server.url], max_retries=5)
    res = runner.run(ADD, agents(server, 1), Budgets(max_calls=20, budget_usd=0))
    assert res.stopped_by == "provider_auth"
    assert len(server.script.requests) == 1
    assert "401" in res.detail


@pytest.mark.slow
def test_anthropic_messages_api_end_to_end(server, store) -> None:
    specs = [f"anthropic:{server.root_url}:claude-a", f"openai:{server.url}:model-b"]
    runner = make_runner(store, [server.root_url, server.url])
    res = runner.run(ADD, specs, Budgets(max_calls=30, budget_usd=0))
    assert res.stopped_by == "solved" and res.public_pass_rate == 1.0
    msgs = [r for r in server.script.requests if r["path"].endswith("/messages")]
    assert msgs, "the anthropic agent never called the Messages API"
    body = msgs[0]["body"]
    assert body["model"] == "claude-a" and "professional Python engineer" in body["system"]
    assert all(m["role"] != "system" for m in body["messages"])
    tally = res.meter["per_agent"]["anthropic:claude-a"]
    assert tally["calls"] >= 1 and tally["tokens_in"] > 0


def never_solves(model: str, messages: list[dict[str, str]]) -> str:
    user = messages[-1]["content"]
    if "Propose" in user:
        return '[{"thought": "handle small numbers", "reasonableness": 0.5}, {"thought": "think more", "reasonableness": 0.5}]'
    if "Write a better replacement" in user:
        return "think even more"
    if "explain what is wrong" in user:
        return "it is wrong"
    return "```python\n" + HALF + "```"


@pytest.mark.parametrize("max_calls", [1, 2, 3, 5, 8])
def test_max_calls_is_never_exceeded(store, max_calls) -> None:
    with FakeLLMServer(Script(never_solves)) as srv:
        runner = make_runner(store, [srv.url], rollouts=50)
        res = runner.run(ADD, agents(srv, 2), Budgets(max_calls=max_calls, budget_usd=0))
        assert res.stopped_by == "max_calls"
        assert res.calls <= max_calls
        assert len(srv.script.requests) <= max_calls


def test_budget_usd_is_never_exceeded(store) -> None:
    with FakeLLMServer(Script(never_solves)) as srv:
        specs = [replace(parse_agent(a), price=Price(200.0, 400.0)) for a in agents(srv, 2)]
        runner = make_runner(store, [srv.url], rollouts=50, max_output_tokens=64)
        res = runner.run(ADD, specs, Budgets(max_calls=1000, budget_usd=0.5))
        assert res.stopped_by == "budget_usd"
        assert 0.1 < res.spend_usd <= 0.5  # the next batch's worst case would pass the cap
        assert res.calls == len(srv.script.requests)
        # the accounting matches the tokens the server reported
        expected = (
            sum(t["tokens_in"] * 200 + t["tokens_out"] * 400 for t in res.meter["per_agent"].values()) / 1e6
        )
        assert res.spend_usd == pytest.approx(expected)


def test_completion_agents_use_few_shot_frames_on_v1_completions(store) -> None:
    from .httpfakes import completion_responder

    with FakeLLMServer(Script(completion_responder)) as srv:
        runner = make_runner(store, [srv.url])
        res = runner.run(
            ADD,
            [f"completion:{srv.url}:base-a", f"completion:{srv.url}:base-b"],
            Budgets(max_calls=30, budget_usd=0),
        )
        bodies = [r["body"] for r in srv.script.requests]
    assert all(r["path"].endswith("/v1/completions") for r in srv.script.requests)
    assert all(len(b.get("stop") or []) <= 4 for b in bodies)
    proposals = [b["prompt"] for b in bodies if b["prompt"].endswith("1.")]
    assert proposals and "### Plan" in proposals[0]
    # plan "Subtract" -> ill (PR 0 < .5) -> refined by the other policy -> "Print the sum" -> solved
    assert res.stopped_by == "solved" and res.refined == 1 and res.public_pass_rate == 1.0
    rows = store.nodes(res.run_id)
    assert rows[1]["thoughts"] == ["Subtract b from a."] and rows[1]["status"] == "replaced"


def test_completion_agent_continues_a_function_body(store) -> None:
    from bdc_assistant.types import Problem, TestCase

    header = 'def add(a, b):\n    """Return a + b.\n    >>> add(1, 2)\n    3\n    """'
    prob = Problem(
        "h/add",
        header,
        public_tests=(TestCase("assert add(1, 2) == 3", kind="call"),),
        kind="call",
        entry_point="add",
        starter_code=header + "\n",
    )

    def body(model: str, messages: list[dict[str, str]]) -> str:
        prompt = messages[-1]["content"]
        return "    return a + b\n\n\ndef check():\n    pass" if prompt.endswith('"""\n') else " x"

    with FakeLLMServer(Script(body)) as srv:
        runner = make_runner(store, [srv.url])
        from bdc_assistant.deep.runner import default_evaluator

        runner.evaluator_factory = default_evaluator  # the real sandbox runs the assembled function
        res = runner.run(prob, [f"completion:{srv.url}:base"], Budgets(max_calls=5, budget_usd=0))
        first = srv.script.requests[0]["body"]
    assert first["prompt"] == header + "\n" and "\ndef " in first["stop"]
    assert res.stopped_by == "solved"
    assert res.best_code == header + "\n    return a + b\n"


def test_under_a_token_cap_a_refine_is_made_only_when_its_replacement_can_be_simulated(server, store) -> None:
    """The scripted run refines its ill "subtract" plan (see the 429 test). Sweep the token cap across the
    refine: wherever it lands, the replacement is simulated or never made (no unjudged stand-in). Before the
    gateway priced the refine's calls, a cap of about 2.3x the uncapped run's tokens left one."""
    uncapped = make_runner(store, [server.url]).run(
        ADD, agents(server, 1), Budgets(max_calls=20, budget_usd=0)
    )
    assert uncapped.refined == 1
    used = uncapped.tokens_in + uncapped.tokens_out
    refined_under_a_cap = 0
    for cap in range(used, used * 8, max(used // 8, 1)):
        res = make_runner(store, [server.url]).run(
            ADD, agents(server, 1), Budgets(max_calls=20, budget_usd=0, max_tokens_total=cap)
        )
        assert res.tree is not None
        stand_ins = [n for n in res.tree.nodes.values() if n.refined_from is not None]
        assert all(n.simulated for n in stand_ins), f"an unsimulated refine under a cap of {cap} tokens"
        refined_under_a_cap += len(stand_ins)
    assert refined_under_a_cap > 0  # the sweep reaches caps that do afford the refine


def test_under_a_dollar_cap_a_refine_is_made_only_when_its_replacement_can_be_simulated(
    server, store
) -> None:
    specs = [replace(parse_agent(a), price=Price(200.0, 400.0)) for a in agents(server, 1)]
    uncapped = make_runner(store, [server.url]).run(ADD, specs, Budgets(max_calls=20, budget_usd=100.0))
    assert uncapped.refined == 1
    refined_under_a_cap = 0
    for step in range(4, 40):
        cap = uncapped.spend_usd * step / 4
        res = make_runner(store, [server.url]).run(ADD, specs, Budgets(max_calls=20, budget_usd=cap))
        assert res.tree is not None
        stand_ins = [n for n in res.tree.nodes.values() if n.refined_from is not None]
        assert all(n.simulated for n in stand_ins), f"an unsimulated refine under a cap of ${cap:.4f}"
        refined_under_a_cap += len(stand_ins)
    assert refined_under_a_cap > 0
