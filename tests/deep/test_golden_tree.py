"""Golden trees: scripted policies pin tree shape, PUCB order, prune, refine limits and backup arithmetic."""

from __future__ import annotations

import json
import math

import pytest

from bdc_assistant.deep import events as ev
from bdc_assistant.deep.search import PublicProblem, Search, SearchConfig
from bdc_assistant.deep.tree import (
    Proposal,
    Tree,
    backup,
    normalize_priors,
    pucb,
    var_p_ucb,
)
from bdc_assistant.types import TestCase

from .fakes import MarkerEvaluator, ScriptedTeam

PROBLEM = PublicProblem(id="p1", statement="add two numbers", public_tests=(TestCase("1 2", "3"),))


def make(team: ScriptedTeam, **cfg: object) -> tuple[Search, list[object]]:
    seen: list[object] = []
    base = dict(rollouts=3, width=2, prune=False, refine=False)
    base.update(cfg)
    search = Search(PROBLEM, team, MarkerEvaluator(), SearchConfig(**base), emit=seen.append)  # type: ignore[arg-type]
    return search, seen


def test_plain_tree_shape_pucb_order_and_backup() -> None:
    team = ScriptedTeam(
        names=("A", "B"),
        scores={"A": [3.0, 1.0], "B": [1.0, 1.0]},
        rates={"": {"A": 0.5, "B": 0.5}, "A1.0": {"A": 0.75, "B": 0.25}, "A2.0": {"A": 1.0, "B": 0.5}},
    )
    search, seen = make(team)
    out = search.run()
    t = out.tree
    assert out.stopped_by == "solved"
    assert t.rollout == 2
    # shape: root -> 4 children (priors .375 .125 .25 .25) -> node 1 expanded into 5..8
    assert t.root.children == [1, 2, 3, 4]
    assert [t.nodes[i].prior for i in (1, 2, 3, 4)] == pytest.approx([0.375, 0.125, 0.25, 0.25])
    assert t.nodes[1].children == [5, 6, 7, 8]
    assert t.nodes[5].thoughts == ("A1.0", "A2.0") and t.nodes[5].authors == ("A", "A")
    assert [i for i, n in t.nodes.items() if n.simulated] == [0, 1, 5]
    # backup arithmetic: root γ·.5; node1 γ·.5 ; node5 terminal r_T = mean PR .75
    assert t.root.returns == pytest.approx([0.45, 0.405, 0.6075])
    assert t.nodes[1].returns == pytest.approx([0.45, 0.675])
    assert t.nodes[5].returns == pytest.approx([0.75])
    assert (t.root.visits, t.nodes[1].visits, t.nodes[5].visits) == (3, 2, 1)
    assert t.nodes[5].status == "terminal"
    assert out.best_node == 5 and out.public_pass_rate == 1.0 and out.best_code.startswith("# A s0")
    # call pattern: root solve, expand, solve, expand, solve (2 policies each)
    kinds = [k for k, _, _ in team.calls]
    assert kinds == ["solve"] * 2 + ["propose"] * 2 + ["solve"] * 2 + ["propose"] * 2 + ["solve"] * 2
    assert sum(isinstance(e, ev.NodeAdded) for e in seen) == 9
    assert [e.rollout for e in seen if isinstance(e, ev.RolloutDone)] == [1, 2]


def test_pucb_and_var_p_ucb_differ_and_guard_first_visit() -> None:
    # parent visited 10 times: a well-valued, visited child vs an unvisited higher-prior child
    a = (0.9, 0.1, 10, 1)
    b = (0.0, 0.3, 10, 0)
    assert pucb(*a, c=1.0) == pytest.approx(0.9 + 0.1 * math.sqrt(math.log(11)) / 2)
    assert pucb(*a, c=1.0) > pucb(*b, c=1.0)
    assert var_p_ucb(*a) == pytest.approx(0.9 + (math.log(21 / 10) + 4) * 0.1 * math.sqrt(math.log(11)) / 2)
    assert var_p_ucb(*b) > var_p_ucb(*a)
    # log(1) guard: a parent visited once still ranks children by prior
    assert pucb(0.0, 0.4, 1, 0, 1.0) > pucb(0.0, 0.2, 1, 0, 1.0) > 0


def test_selection_switch_changes_the_path() -> None:
    def run(selection: str) -> list[tuple[str, str, tuple[str, ...]]]:
        team = ScriptedTeam(
            names=("A", "B"),
            scores={"A": [9.0, 1.0], "B": [1.0, 1.0]},
            rates={"": {"A": 0.0, "B": 0.0}, "A1.0": {"A": 0.5, "B": 0.5}},
        )
        make(team, rollouts=3, selection=selection)[0].run()
        return team.calls

    # rollout 3: pucb (c=1) stays under node 1 (Q .225 + .177 > .294) and picks B2.0 over the failed A2.0;
    # var_p_ucb's larger constant leaves node 1 for B's first thought (.991 < 1.276)
    assert run("pucb")[-2:] == [("solve", "A", ("A1.0", "B2.0")), ("solve", "B", ("A1.0", "B2.0"))]
    assert run("var_p_ucb")[-2:] == [("solve", "A", ("B1.0",)), ("solve", "B", ("B1.0",))]


def test_ties_break_by_node_id_not_policy() -> None:
    team = ScriptedTeam(names=("B", "A"), scores={"A": [1.0], "B": [1.0]}, default_rate=0.0)
    search, _ = make(team, rollouts=1, width=1)
    search.run()
    # both children have prior .5; node 1 (B's, created first) is simulated
    assert team.calls[-1] == ("solve", "A", ("B1.0",))


def test_prune_marks_ill_keeps_it_and_backs_up_zero() -> None:
    team = ScriptedTeam(
        names=("A", "B"),
        scores={"A": [3.0, 1.0], "B": [1.0, 1.0]},
        rates={"": {"A": 0.5, "B": 0.5}, "A1.0": {"A": 0.25, "B": 0.25}, "B1.0": {"A": 0.5, "B": 0.75}},
    )
    search, seen = make(team, rollouts=2, prune=True)
    out = search.run()
    t = out.tree
    assert t.nodes[1].status == "ill" and t.nodes[1].returns == [0.0] and t.nodes[1].visits == 1
    assert t.root.returns == pytest.approx([0.45, 0.0, 0.9 * 0.9 * 0.625])
    assert 1 in t.root.children  # kept in the log
    # second rollout skips the ill node: next best prior is node 3 (B1.0; ties with node 4 go to the lower id)
    assert ("solve", "A", ("B1.0",)) in team.calls
    assert t.pruned_total == 1
    assert [e.node_id for e in seen if isinstance(e, ev.NodePruned)] == [1]


def test_refine_local_and_global_limits() -> None:
    team = ScriptedTeam(
        names=("A", "B"),
        scores={"A": [3.0, 1.0], "B": [1.0, 1.0]},
        rates={"": {"A": 0.5, "B": 0.5}},
        default_rate=0.25,  # every child is ill, refined or not
    )
    search, seen = make(
        team, rollouts=2, prune=True, refine=True, refine_local_limit=1, refine_global_limit=1
    )
    out = search.run()
    t = out.tree
    # rollout 1: node 1 ill -> B summarises, A regenerates -> node 5 replaces it, still ill -> pruned
    assert t.nodes[1].status == "replaced" and t.nodes[1].replaced_by == 5
    assert t.nodes[5].thoughts == ("A1.0'",) and t.nodes[5].refined_from == 1 and t.nodes[5].refines == 1
    assert t.nodes[5].status == "ill"
    assert t.root.children == [5, 2, 3, 4]
    assert ("summarise", "B", ("A1.0",)) in team.calls and ("regenerate", "A", ()) in team.calls
    # rollout 2: node 3 ill, but the global limit (1) is spent: pruned without a refine
    assert t.nodes[3].status == "ill" and t.nodes[3].replaced_by is None
    assert [k for k, _, _ in team.calls].count("summarise") == 1
    assert (t.refines_total, t.refines_failed, t.refines_effective, t.pruned_total) == (1, 1, 0, 2)
    refined = [e for e in seen if isinstance(e, ev.NodeRefined)]
    assert [(e.ill_node_id, e.new_node_id, e.critic, e.author) for e in refined] == [(1, 5, "B", "A")]


def test_refine_local_limit_two_refines_twice_then_succeeds() -> None:
    team = ScriptedTeam(
        names=("A", "B"),
        scores={"A": [1.0], "B": [1.0]},
        rates={"": {"A": 0.5, "B": 0.5}, "A1.0''": {"A": 1.0, "B": 1.0}},
        default_rate=0.0,
    )
    search, _ = make(
        team, rollouts=1, width=1, prune=True, refine=True, refine_local_limit=2, refine_global_limit=9
    )
    out = search.run()
    t = out.tree
    assert [t.nodes[i].thoughts for i in (1, 3, 4)] == [("A1.0",), ("A1.0'",), ("A1.0''",)]
    assert t.nodes[4].refines == 2 and t.nodes[4].status == "terminal"
    assert (t.refines_total, t.refines_failed, t.refines_effective) == (2, 1, 1)
    assert t.nodes[4].returns == [1.0] and out.public_pass_rate == 1.0 and out.stopped_by == "solved"


def test_a_refine_is_made_only_when_the_budget_can_simulate_its_replacement() -> None:
    def run(max_calls: int) -> tuple[ScriptedTeam, object]:
        team = ScriptedTeam(
            names=("A", "B"),
            scores={"A": [3.0, 1.0], "B": [1.0, 1.0]},
            rates={"": {"A": 0.5, "B": 0.5}},
            default_rate=0.25,  # every child is ill
            max_calls=max_calls,
        )
        out = make(team, rollouts=3, prune=True, refine=True, refine_global_limit=9)[0].run()
        return team, out

    # 10 calls: root solve (2), expand (2), node 1's solve (2) leaves 4 = summarise + regenerate + re-solve (2)
    team, out = run(10)
    assert [k for k, _, _ in team.calls] == ["solve"] * 2 + ["propose"] * 2 + ["solve"] * 2 + [
        "summarise",
        "regenerate",
    ] + ["solve"] * 2
    assert out.tree.nodes[5].refined_from == 1 and out.tree.nodes[5].simulated
    # 9 calls: 3 left after node 1's solve, one short of a refine whose replacement gets simulated, so node 1
    # is pruned at once and the calls go to the next child (node 3, B's first thought) instead
    team, out = run(9)
    assert [k for k, _, _ in team.calls] == ["solve"] * 2 + ["propose"] * 2 + ["solve"] * 2 + ["solve"] * 2
    t = out.tree
    assert t.nodes[1].status == "ill" and t.nodes[1].replaced_by is None and t.refines_total == 0
    assert t.nodes[3].simulated and t.nodes[3].status == "ill" and t.pruned_total == 2
    assert out.stopped_by == "max_calls"
    assert all(n.simulated for n in t.nodes.values() if n.refined_from is not None)  # no unsimulated stand-in


def test_all_children_pruned_exhausts_the_root() -> None:
    team = ScriptedTeam(names=("A",), scores={"A": [1.0]}, rates={"": {"A": 0.5}}, default_rate=0.0)
    out = make(team, rollouts=10, width=1, prune=True)[0].run()
    assert out.stopped_by == "exhausted"
    assert out.best_node == 0 and out.public_pass_rate == 0.5


def test_budget_stop_is_all_or_nothing_and_recorded() -> None:
    team = ScriptedTeam(names=("A", "B"), default_rate=0.0, max_calls=5)
    out = make(team, rollouts=5)[0].run()
    assert out.stopped_by == "max_calls"
    assert len(team.calls) == 4  # root solve (2) + expand (2); the next solve batch (2) would pass 5
    assert len(out.tree.nodes) == 5


def test_checkpoint_resume_equals_uninterrupted() -> None:
    def team() -> ScriptedTeam:
        return ScriptedTeam(
            names=("A", "B"),
            scores={"A": [2.0, 1.0], "B": [1.0, 3.0]},
            rates={"": {"A": 0.25, "B": 0.25}, "B1.1": {"A": 0.5, "B": 0.25}, "A2.0": {"A": 0.5, "B": 0.75}},
            default_rate=0.0,
        )

    cfg = dict(rollouts=6, prune=True, refine=True, refine_global_limit=2)
    full = make(team(), **cfg)[0]
    full_out = full.run()
    snaps: list[str] = []
    first = make(team(), **cfg)[0]
    first.on_checkpoint = lambda t: snaps.append(json.dumps(t.to_json()))
    first.run()
    resumed = make(team(), **cfg)[0]
    resumed.tree = Tree.from_json(json.loads(snaps[3]))  # killed after rollout 3
    out = resumed.run()
    assert json.dumps(out.tree.to_json()) == json.dumps(full_out.tree.to_json())
    assert out.stopped_by == full_out.stopped_by and out.best_code == full_out.best_code


def test_backup_and_priors_pure() -> None:
    t = Tree()
    r = t.add(None, (), (), 1.0)
    a = t.add(r.id, ("x",), ("A",), 0.5)
    b = t.add(a.id, ("x", "y"), ("A", "B"), 0.5)
    assert backup(t, b.id, 1.0, 0.5) == [(2, 1.0), (1, 0.5), (0, 0.25)]
    pri = normalize_priors(
        [[Proposal("a", 0.6), Proposal("b", 0.2)], [Proposal("c", None), Proposal("d", 1)], []]
    )
    assert pri == [pytest.approx([0.25, 1 / 12]), pytest.approx([1 / 6, 1 / 6]), []]


def test_search_problem_has_no_private_tests() -> None:
    assert "private_tests" not in PublicProblem.__dataclass_fields__


def test_critic_is_another_policy_seeded_and_deterministic() -> None:
    def critic(seed: int) -> list[str]:
        team = ScriptedTeam(names=("A", "B", "C"))
        search = Search(PROBLEM, team, MarkerEvaluator(), SearchConfig(seed=seed))
        picks = []
        for i in range(6):
            search.tree.refines_total = i
            picks.append(search.pick_critic("A"))
        return picks

    assert all(p in ("B", "C") for p in critic(0))
    assert critic(0) == critic(0)
    assert any(critic(s) != critic(0) for s in range(1, 6))
    single = ScriptedTeam(names=("A",))
    assert Search(PROBLEM, single, MarkerEvaluator()).pick_critic("A") == "A"  # nobody else to ask


def test_rollouts_that_only_revisit_finished_leaves_stop_as_converged() -> None:
    """max_depth 1: after the children are simulated every leaf is terminal, so further rollouts spend no
    call. The search stops after ``idle_rollouts`` such rollouts instead of spinning to a huge cap, and a
    checkpoint taken mid-streak resumes to the same tree."""

    def team() -> ScriptedTeam:
        return ScriptedTeam(names=("A",), scores={"A": [1.0, 1.0]}, rates={"": {"A": 0.5}}, default_rate=0.25)

    cfg = dict(rollouts=10_000, width=2, max_depth=1, idle_rollouts=5)
    search, seen = make(team(), **cfg)
    snaps: list[str] = []
    search.on_checkpoint = lambda t: snaps.append(json.dumps(t.to_json()))
    out = search.run()
    assert out.stopped_by == "converged"
    # rollout 1 expands + simulates child 1, rollout 2 simulates child 2, then 5 idle revisits
    assert out.tree.rollout == 7 and out.tree.idle == 5
    assert [n.status for n in out.tree.nodes.values()] == ["open", "terminal", "terminal"]
    assert sum(isinstance(e, ev.RolloutDone) for e in seen) == 7
    resumed = make(team(), **cfg)[0]
    resumed.tree = Tree.from_json(json.loads(snaps[4]))  # killed during the idle streak
    again = resumed.run()
    assert json.dumps(again.tree.to_json()) == json.dumps(out.tree.to_json())
    # idle_rollouts = 0 keeps the old behaviour: the rollout cap decides
    capped = make(team(), rollouts=20, width=2, max_depth=1, idle_rollouts=0)[0].run()
    assert capped.stopped_by == "rollouts" and capped.tree.rollout == 20
