"""Exports of a stored deep-mode run.

* ``jsonl``: our trajectory schema, one line per simulated node (a root-to-node path):
  ``{"problem_id", "problem", "thought", "solution", "public_pass_rate", "source", "policy", "verified"}``
  where ``thought`` is the path's thoughts joined by newlines (the root's is empty), ``solution`` the
  node's best program, ``public_pass_rate`` that program's public pass rate, ``policy`` the policy that
  wrote it and ``source`` = ``deep:<run_id>``. The trainer reads these as p2t (problem → thought) and t2s
  pairs, so by default only *verified pairs* are written (``"verified": true``): the node is not ill or
  replaced (pruned), its best program passes every public test, and the run has at least one public test
  that a person or a dataset wrote (LLM-generated tests alone verify nothing: the same models wrote them).
  Wrong code must never reach training. With ``include_negatives`` (``bdc runs export --include-negatives``)
  every other simulated node is written too, as ``"verified": false, "negative": true`` with a one-phrase
  ``"rejected"`` reason; the trainer never turns such a line into a training pair, whatever its config.
  What is verified is the *public* tests only: a deep run never sees private tests.
* ``rethinkmcts``: the RethinkMCTS / PG-TD per-problem ``<idx>.json`` (codes, rewards, train rewards,
  time, sample times, token counts, rethink counters). Private rewards are not known to a deep run
  (the search never sees private tests), so ``rewards`` holds ``null`` per code.
* ``bdc``: the BDC ``trace.json`` (decision/chance graph with features). Every non-root node is both the
  chance node of the edge into it (same id) and a decision node.

Everything exported comes from the store, which only ever held scrubbed text.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .. import atomic
from ..store.runs import RunStore
from .tree import Node, Solution, Tree, child_score


def _tree(store: RunStore, run_id: str) -> tuple[Tree, dict[str, Any]]:
    row = store.get_run(run_id)
    nodes = store.nodes(run_id)
    data = row.checkpoint or {
        "nodes": nodes,
        "next_id": len(nodes),
        "rollout": 0,
        "refines_total": 0,
        "refines_effective": 0,
        "refines_failed": 0,
        "pruned_total": 0,
    }
    return Tree.from_json(data), {"row": row}


PRUNED = ("ill", "replaced")  # judged worse than the parent; "exhausted" only lost its children


def checked_tests(problem: dict[str, Any]) -> int:
    """Public tests a person or a dataset wrote (user, statement, dataset): the ones that can verify code."""
    return sum(1 for t in problem.get("public_tests") or () if t.get("origin") != "generated")


def rejection(node: Node, best: Solution, n_checked: int) -> str:
    """Why the node's best program is not a verified pair; empty when it is one."""
    if node.status in PRUNED:
        return f"the node is {node.status} (pruned)" + (f": {node.reason}" if node.reason else "")
    if n_checked == 0:
        return "the run has no public test written by a person or a dataset"
    if best.pass_rate < 1.0:
        return f"the best program's public pass rate is {best.pass_rate:g}, below 1"
    return ""


def trajectories(store: RunStore, run_id: str, *, include_negatives: bool = False) -> list[dict[str, Any]]:
    """One line per simulated node; verified pairs only unless ``include_negatives`` (see the module doc)."""
    tree, meta = _tree(store, run_id)
    row = meta["row"]
    n_checked = checked_tests(row.problem)
    out = []
    for node in sorted(tree.nodes.values(), key=lambda n: n.id):
        best = node.best_solution()
        if not node.simulated or best is None:
            continue
        why = rejection(node, best, n_checked)
        if why and not include_negatives:
            continue
        line: dict[str, Any] = {
            "problem_id": row.problem_id,
            "problem": row.problem["statement"],
            "thought": "\n".join(node.thoughts),
            "solution": best.code,
            "public_pass_rate": best.pass_rate,
            "source": f"deep:{run_id}",
            "policy": best.policy,
            "verified": not why,
        }
        if why:
            line |= {"negative": True, "rejected": why}
        out.append(line)
    return out


def rethinkmcts(store: RunStore, run_id: str) -> dict[str, Any]:
    tree, meta = _tree(store, run_id)
    row = meta["row"]
    meter = row.meter or {}
    codes, train, times = [], [], []
    t0 = row.created_at
    events = {e["node_id"]: e["ts"] for e in store.events(run_id) if e["kind"] == "NodeSimulated"}
    for node in sorted(tree.nodes.values(), key=lambda n: n.id):
        for sol in node.solutions:
            codes.append(sol.code)
            train.append(sol.pass_rate)
            times.append(round(events.get(node.id, t0) - t0, 3))
    return {
        "codes": codes,
        "rewards": [None] * len(codes),
        "train rewards": train,
        "time": times,
        "sample times": meter.get("calls", 0),
        "input_token_num": meter.get("tokens_in", 0),
        "output_token_num": meter.get("tokens_out", 0),
        "failed_json_num": meter.get("parse_failures", 0),
        "rethink_total_nums": tree.refines_total,
        "rethink_effective_nums": tree.refines_effective,
        "rethink_failed_nums": tree.refines_failed,
        "rethink_success_nums": sum(
            1
            for n in tree.nodes.values()
            if n.refined_from is not None and (n.best_solution() or _Zero).pass_rate >= 1
        ),
    }


class _Zero:
    pass_rate = 0.0


def bdc_trace(store: RunStore, run_id: str) -> dict[str, Any]:
    tree, meta = _tree(store, run_id)
    row = meta["row"]
    conf = row.config.get("search", {})
    statement = row.problem["statement"]
    d2c: dict[str, list[int]] = {}
    c2d: dict[str, int] = {}
    cfeat: dict[str, dict[str, Any]] = {}
    dfeat: dict[str, dict[str, Any]] = {}
    for node in sorted(tree.nodes.values(), key=lambda n: n.id):
        dfeat[str(node.id)] = {"state": statement + "\n" + "\n".join(node.thoughts), "value": node.pr}
        d2c[str(node.id)] = list(node.children)
        if node.parent is not None:
            parent = tree.nodes[node.parent]
            c2d[str(node.id)] = node.id
            cfeat[str(node.id)] = {
                "var_p_ucb": _score(tree, parent, node, conf),
                "action": node.thoughts[-1],
                "prob": node.prior,
                "by_model": node.authors[-1],
                "status": node.status,
            }
    return {
        "decision_to_chance": d2c,
        "chance_to_decision": c2d,
        "chance_features": cfeat,
        "decision_features": dfeat,
    }


def _score(tree: Tree, parent: Node, node: Node, conf: dict[str, Any]) -> float:
    return child_score(
        tree,
        parent,
        node,
        selection="var_p_ucb",
        c=conf.get("c_puct", 1.0),
        q_mode=conf.get("q_mode", "mean"),
    )


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "problem"


def export_run(
    store: RunStore, run_id: str, fmt: str, out: Path | None, *, include_negatives: bool = False
) -> list[Path] | str:
    """Write the export; return the files written, or the text when ``out`` is None (stdout).

    ``include_negatives`` concerns ``jsonl`` only (the other formats always hold every node)."""
    if fmt == "jsonl":
        rows = trajectories(store, run_id, include_negatives=include_negatives)
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        name = f"{safe_name(run_id)}.jsonl"
    elif fmt == "rethinkmcts":
        text = json.dumps(rethinkmcts(store, run_id), ensure_ascii=False, indent=1)
        name = f"{safe_name(store.get_run(run_id).problem_id)}.json"
    elif fmt == "bdc":
        text = json.dumps(bdc_trace(store, run_id), ensure_ascii=False, indent=1)
        name = "trace.json"
    else:  # pragma: no cover - argparse restricts choices
        raise ValueError(fmt)
    text = store.scrub(text)
    if out is None:
        return text
    target = out / name if out.is_dir() or str(out).endswith("/") else out
    atomic.write_text(target, text)
    return [target]
