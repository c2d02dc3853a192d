"""Where a deep-bench run's LLM calls went, read back from the run store.

``bdc deep-bench`` keeps one stored search run per attempt of every method on every problem (a replay from
the response cache stores them again). This script groups the runs one ``deep-bench`` process created into
the bench's rows and counts, per row: calls per agent and per phase (solve, propose, reflect, ...), the
nodes prune removed, the refines (and how many of them made a node that is no longer ill: a public pass
rate at least its parent's), and why each attempt stopped. It answers #14's "how often prune and refine
fired, what refine changed, where the budget went" with numbers from the run itself.

    python bench/deep_budget.py --since UNIX_TIME [--until UNIX_TIME] [--report REPORT.json] [--json]

``--since``/``--until`` bound the runs' creation time (the start of the deep-bench process, e.g. ``date
+%s`` before it); ``--report`` keeps only the problems of a committed report (its ``per_problem.ids``).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from bdc_assistant.deep.bench import BASELINES

# counts every row shows, zero included
_ALWAYS = ("pruned", "refines", "refines_by_other_agent", "refines_improved", "refines_effective")


def row_label(config: dict[str, Any], agents: list[str]) -> str:
    """The deep-bench row a stored run belongs to, from its search config and agents."""
    search, calls = config["search"], config["budgets"]["max_calls"]
    method = search["method"]
    if len(agents) > 1:
        if not search["prune"]:
            return "mc-toa"
        return "mc-toa+prune+refine" if search["refine"] else "mc-toa+prune"
    agent = agents[0]
    if method in BASELINES:  # a Table-1 baseline's runs carry its name as their search method
        return f"{method}[{agent}]"
    if search["rollouts"] == 0:  # a direct solve: zero-shot is one call at seed 0, every other is best-of-n
        return f"zero-shot[{agent}]" if calls == 1 and search["seed"] == 0 else f"best-of-n[{agent}]"
    return f"single[{agent}]"


def budget_analysis(db: Path, since: float, until: float, problems: set[str] | None) -> dict[str, Any]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    runs = con.execute(
        "SELECT run_id, problem_id, config_json, agents_json, stopped_by, meter_json FROM deep_runs"
        " WHERE created_at >= ? AND created_at < ? AND status = 'finished'",
        (since, until),
    ).fetchall()
    rows: dict[str, Counter[str]] = defaultdict(Counter)
    seen: dict[str, set[str]] = defaultdict(set)
    for run_id, problem_id, config_json, agents_json, stopped_by, meter_json in runs:
        if problems is not None and problem_id not in problems:
            continue
        agents = [a["name"] for a in json.loads(agents_json)]
        label = row_label(json.loads(config_json), agents)
        meter = json.loads(meter_json or "{}")
        row = rows[label]
        seen[label].add(problem_id)
        row["runs"] += 1
        row["calls"] += meter.get("calls", 0)
        row["tokens_out"] += meter.get("tokens_out", 0)
        for agent, spent in meter.get("per_agent", {}).items():
            row[f"calls@{agent}"] += spent.get("calls", 0)
        for phase, n in meter.get("per_phase", {}).items():
            row[f"phase:{phase}"] += n
        row[f"stopped:{stopped_by}"] += 1
        row["pruned"] += con.execute(
            "SELECT count(*) FROM deep_events WHERE run_id = ? AND kind = 'NodePruned'", (run_id,)
        ).fetchone()[0]
        nodes = con.execute(
            "SELECT node_id, parent_id, pr FROM deep_nodes WHERE run_id = ?", (run_id,)
        ).fetchall()
        parent = {nid: up for nid, up, _ in nodes}
        pr = {nid: rate for nid, _, rate in nodes}
        for (payload,) in con.execute(
            "SELECT payload_json FROM deep_events WHERE run_id = ? AND kind = 'NodeRefined'", (run_id,)
        ):
            event = json.loads(payload)
            row["refines"] += 1
            if event["critic"] != event["author"]:
                row["refines_by_other_agent"] += 1
            new, ill = event["new_node_id"], event["ill_node_id"]
            up = parent.get(ill)
            new_pr, ill_pr = pr.get(new), pr.get(ill)
            if new_pr is not None and ill_pr is not None and new_pr > ill_pr:
                row["refines_improved"] += 1
            if new_pr is not None and up is not None and pr.get(up) is not None and new_pr >= pr[up]:
                row["refines_effective"] += 1
    out: dict[str, Any] = {}
    for label in sorted(rows):
        row = rows[label]
        counts = {key: 0 for key in _ALWAYS} | dict(row)
        out[label] = {"problems": len(seen[label]), **dict(sorted(counts.items()))}
    return out


def _default_db() -> Path:
    from bdc_assistant.paths import app_paths

    return Path(app_paths().db_file)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--since", type=float, required=True, help="first creation time (unix seconds)")
    ap.add_argument("--until", type=float, default=float("inf"), help="end of the creation window")
    ap.add_argument("--report", type=Path, help="keep only the problems of this deep-bench report JSON")
    ap.add_argument("--db", type=Path, help="the run store (default: the app's database)")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = ap.parse_args(argv)
    problems = None
    try:
        if args.report:
            report = json.loads(args.report.read_text())
            problems = set(report.get("report", report)["per_problem"]["ids"])
    except (OSError, ValueError, KeyError, AttributeError) as exc:
        print(
            f"deep_budget: {args.report} is not a deep-bench report with per-problem ids ({exc!r})",
            file=sys.stderr,
        )
        return 2
    db = args.db or _default_db()
    try:
        analysis = budget_analysis(db, args.since, args.until, problems)
    except sqlite3.Error as exc:
        print(f"deep_budget: cannot read the run store {db} ({exc})", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(analysis, indent=2))
        return 0
    for label, row in analysis.items():
        n = row["problems"] or 1
        agents = ", ".join(f"{k[6:]} {v / n:.2f}" for k, v in row.items() if k.startswith("calls@"))
        phases = ", ".join(f"{k[6:]} {v / n:.2f}" for k, v in row.items() if k.startswith("phase:"))
        stops = ", ".join(f"{k[8:]} {v}" for k, v in row.items() if k.startswith("stopped:"))
        print(
            f"{label}: {row['problems']} problems, {row['calls'] / n:.2f} calls/problem ({agents}); phases {phases};"
            f" pruned {row['pruned']}, refines {row['refines']}"
            f" (by another agent {row['refines_by_other_agent']}, improved {row['refines_improved']},"
            f" no longer ill {row['refines_effective']});"
            f" attempts stopped by {stops}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
