"""The runner API the CLI and TUI share: events, generated tests, cancel + resume, replay, exports."""

from __future__ import annotations

import pytest

from bdc_assistant.deep import events as ev
from bdc_assistant.deep.exports import bdc_trace, rethinkmcts, trajectories
from bdc_assistant.deep.llm import Budgets
from bdc_assistant.errors import DatasetError, StoreError
from bdc_assistant.types import CancelToken, Problem, TestCase

from .conftest import ADD, make_runner


def test_events_tell_the_whole_story_in_order(server, store) -> None:
    seen: list[object] = []
    runner = make_runner(store, [server.url])
    res = runner.run(
        ADD,
        [f"openai:{server.url}:model-a", f"openai:{server.url}:model-b"],
        Budgets(max_calls=30, budget_usd=0),
        on_event=seen.append,
    )
    kinds = [type(e).__name__ for e in seen]
    assert kinds[0] == "RunStarted" and kinds[-1] == "Finished"
    assert kinds.index("NodeRefined") > kinds.index("NodeSimulated")
    spends = [e for e in seen if isinstance(e, ev.Spend)]
    assert [s.calls for s in spends] == list(range(1, res.calls + 1))
    done = [e for e in seen if isinstance(e, ev.RolloutDone)]
    assert done[-1].calls == res.calls
    stored = [e["kind"] for e in store.events(res.run_id)]
    assert stored == kinds[1:]  # everything but RunStarted is in the log, same order


def test_private_tests_never_reach_the_search(server, store) -> None:
    secret = TestCase("100 200\n", "300\n", origin="dataset")
    prob = Problem("add", ADD.statement, public_tests=ADD.public_tests, private_tests=(secret,))
    seen_tests: list[tuple] = []

    runner = make_runner(store, [server.url])
    inner = runner.evaluator_factory
    runner.evaluator_factory = lambda p: (seen_tests.append(p.public_tests), inner(p))[1]
    res = runner.run(prob, [f"openai:{server.url}:model-a"], Budgets(max_calls=10, budget_usd=0))
    assert seen_tests == [ADD.public_tests]
    assert "100 200" not in str(store.get_run(res.run_id).problem)
    assert all("100 200" not in str(r["body"]) for r in server.script.requests)


def test_generated_tests_are_public_and_marked(server, store) -> None:
    prob = Problem("add0", ADD.statement)
    runner = make_runner(store, [server.url])
    res = runner.run(
        prob, [f"openai:{server.url}:model-b"], Budgets(max_calls=10, budget_usd=0), generate_tests=3
    )
    tests = store.get_run(res.run_id).problem["public_tests"]
    assert tests == [
        {"input": "7 8\n", "output": "15\n", "kind": "stdio", "fn_name": None, "origin": "generated"}
    ]
    assert res.meter["per_phase"]["testgen"] == 1


def test_no_tests_is_one_sentence(server, store) -> None:
    with pytest.raises(DatasetError, match="at least one public test"):
        make_runner(store, [server.url]).run(Problem("x", "s"), [f"openai:{server.url}:m"], generate_tests=0)


def test_cancel_leaves_a_resumable_run_and_resume_finishes_it(server, store) -> None:
    cancel = CancelToken()
    seen: list[object] = []

    def on_event(e: object) -> None:
        seen.append(e)
        if isinstance(e, ev.Spend) and e.calls == 3:
            cancel.cancel()

    runner = make_runner(store, [server.url])
    agents = [f"openai:{server.url}:model-a", f"openai:{server.url}:model-b"]
    res = runner.run(ADD, agents, Budgets(max_calls=30, budget_usd=0), on_event=on_event, cancel=cancel)
    assert res.stopped_by == "cancelled"
    assert store.get_run(res.run_id).status == "running"
    again = runner.resume(res.run_id)
    assert again.stopped_by == "solved" and again.public_pass_rate == 1.0
    with pytest.raises(StoreError, match="already finished"):
        runner.resume(res.run_id)
    fresh = runner.run(ADD, agents, Budgets(max_calls=30, budget_usd=0))
    assert fresh.as_json() | {"run_id": ""} == again.as_json() | {"run_id": ""}


def test_exports_shapes(server, store) -> None:
    runner = make_runner(store, [server.url])
    res = runner.run(
        ADD,
        [f"openai:{server.url}:model-a", f"openai:{server.url}:model-b"],
        Budgets(max_calls=30, budget_usd=0),
    )
    rows = trajectories(store, res.run_id, include_negatives=True)
    assert [r["thought"] for r in rows] == [
        "",
        "subtract the numbers (d0)",
        "compute the sum of a and b and print it.",
    ]
    assert [r["public_pass_rate"] for r in rows] == [0.5, 0.0, 1.0]
    assert [r["verified"] for r in rows] == [False, False, True]
    assert all(r["source"] == f"deep:{res.run_id}" and r["problem_id"] == "add" for r in rows)
    assert trajectories(store, res.run_id) == rows[2:]  # the default: verified pairs only
    trace = bdc_trace(store, res.run_id)
    assert trace["decision_to_chance"]["0"] == [5, 2, 3, 4]
    assert trace["chance_features"]["5"]["by_model"] == "openai:model-a"
    assert trace["chance_features"]["1"]["status"] == "replaced"
    r = rethinkmcts(store, res.run_id)
    assert r["train rewards"] == [0.5, 0.5, 0.0, 0.0, 1.0, 1.0] and r["rewards"] == [None] * 6
    assert (
        r["sample times"] == res.calls and r["rethink_total_nums"] == 1 and r["rethink_effective_nums"] == 1
    )


def test_wall_clock_and_token_caps(server, store) -> None:
    runner = make_runner(store, [server.url])
    res = runner.run(
        ADD, [f"openai:{server.url}:model-a"], Budgets(max_calls=30, budget_usd=0, wall_clock_s=1e-6)
    )
    assert res.stopped_by == "wall_clock" and res.calls == 0
    res = runner.run(
        ADD, [f"openai:{server.url}:model-a"], Budgets(max_calls=30, budget_usd=0, max_tokens_total=2000)
    )
    assert res.stopped_by == "max_tokens" and res.tokens_in + res.tokens_out <= 2000


def test_replay_from_cache_rebuilds_the_same_tree_without_sending(server, store) -> None:
    runner = make_runner(store, [server.url])
    agents = [f"openai:{server.url}:model-a", f"openai:{server.url}:model-b"]
    res = runner.run(ADD, agents, Budgets(max_calls=30, budget_usd=0))
    sent = len(server.script.requests)
    again, identical = runner.replay(res.run_id)
    assert identical and again.as_json() | {"run_id": ""} == res.as_json() | {"run_id": ""}
    assert len(server.script.requests) == sent
    store.conn.execute(
        "DELETE FROM llm_cache WHERE rowid IN (SELECT rowid FROM llm_cache ORDER BY created_at DESC LIMIT 1)"
    )
    partial, identical = runner.replay(res.run_id)
    assert partial.stopped_by == "replay_miss" and not identical
    assert len(server.script.requests) == sent
