"""`bdc runs list|show|export|resume|replay|cache-export|cache-import`: the deep-mode runs in the store, and
the LLM response cache they resume from, carried between machines as JSON Lines."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="runs_cmd", metavar="ACTION", required=True)
    ls = sub.add_parser("list", help="list runs, newest first")
    ls.add_argument("--limit", type=int, default=50)
    ls.add_argument("--json", action="store_true")
    show = sub.add_parser("show", help="one run's result and tree summary")
    show.add_argument("run_id")
    ex = sub.add_parser("export", help="export a run")
    ex.add_argument("run_id")
    ex.add_argument("--format", choices=["jsonl", "rethinkmcts", "bdc"], default="jsonl")
    ex.add_argument("--out", type=Path, help="file or directory (default: stdout)")
    ex.add_argument(
        "--include-negatives",
        action="store_true",
        help="jsonl: also write the nodes that are not verified pairs (pruned, or failing a public test), "
        'marked "verified": false, "negative": true; the trainer never trains on them',
    )
    rs = sub.add_parser("resume", help="continue a killed or cancelled run from its last rollout")
    rs.add_argument("run_id")
    rs.add_argument("--json", action="store_true")
    rp = sub.add_parser(
        "replay", help="rebuild a run from the response cache only and check the tree is identical"
    )
    rp.add_argument("run_id")
    rp.add_argument("--json", action="store_true")
    ce = sub.add_parser(
        "cache-export",
        help="write the LLM response cache and deep-bench's recorded sandbox outcomes to a JSON Lines file "
        "(.gz compresses), to resume a long deep-bench on another machine",
    )
    ce.add_argument("out", type=Path)
    ce.add_argument(
        "--since",
        type=float,
        default=0.0,
        help="only rows cached or recorded at or after this time (epoch seconds)",
    )
    ci = sub.add_parser(
        "cache-import",
        help="add the responses and outcomes of cache-export files that this store lacks (never overwrites)",
    )
    ci.add_argument("files", type=Path, nargs="+")


def run(args: argparse.Namespace) -> int:
    from ..store.runs import RunStore

    store = RunStore()
    if args.runs_cmd in ("cache-export", "cache-import"):
        from ..store.cache_io import export_cache, import_cache

        if args.runs_cmd == "cache-export":
            n = export_cache(store, args.out, since=args.since)
            print(f"{n.responses} cached responses and {n.outcomes} sandbox outcomes written to {args.out}")
            return 0
        for src in args.files:
            added, had = import_cache(store, src)
            line = f"{src}: {added.responses} responses added, {had.responses} already cached"
            if added.outcomes or had.outcomes:
                line += f"; {added.outcomes} sandbox outcomes added, {had.outcomes} already recorded"
            print(line)
        return 0
    if args.runs_cmd == "list":
        rows = store.list_runs(args.limit)
        if args.json:
            for r in rows:
                print(
                    json.dumps(
                        {
                            "run_id": r.run_id,
                            "problem_id": r.problem_id,
                            "status": r.status,
                            "stopped_by": r.stopped_by,
                            "created_at": r.created_at,
                            "public_pass_rate": (r.result or {}).get("public_pass_rate"),
                            "calls": (r.meter or {}).get("calls", 0),
                        }
                    )
                )
            return 0
        if not rows:
            print("no deep-mode runs yet")
        for r in rows:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.created_at))
            pr = (r.result or {}).get("public_pass_rate")
            pr_text = f"{pr:.3f}" if isinstance(pr, float | int) else "-"
            print(
                f"{r.run_id}  {when}  {r.status:<8} {r.stopped_by or '-':<14} PR {pr_text}  "
                f"calls {(r.meter or {}).get('calls', 0):<4} {r.problem_id}"
            )
        return 0
    if args.runs_cmd == "show":
        r = store.get_run(args.run_id)
        print(
            json.dumps(
                {
                    "run_id": r.run_id,
                    "status": r.status,
                    "stopped_by": r.stopped_by,
                    "result": r.result,
                    "meter": r.meter,
                    "agents": [a["spec"] for a in r.agents],
                    "nodes": len(store.nodes(r.run_id)),
                },
                indent=1,
            )
        )
        return 0
    if args.runs_cmd == "export":
        from ..deep.exports import export_run

        written = export_run(
            store, args.run_id, args.format, args.out, include_negatives=args.include_negatives
        )
        if isinstance(written, str):
            sys.stdout.write(written if written.endswith("\n") or not written else written + "\n")
        else:
            for path in written:
                print(path, file=sys.stderr)
        return 0
    from ..config import load_settings
    from ..evaluation import cc_checkers  # noqa: F401 - a stored CodeContests problem may name its checker

    if args.runs_cmd == "replay":
        from ..deep.runner import DeepRunner

        result, identical = DeepRunner(store=store, settings=load_settings().deep).replay(args.run_id)
        if args.json:
            print(json.dumps(result.as_json() | {"replay_of": args.run_id, "identical": identical}))
        else:
            print(
                f"replay {result.run_id} of {args.run_id}: stopped by {result.stopped_by}; the tree is "
                f"{'identical' if identical else 'DIFFERENT'}"
            )
        return 0 if identical else 1
    # resume
    from ..deep.progress import Progress
    from ..deep.runner import DeepRunner
    from .deep import finish, install_cancel

    out = sys.stderr if args.json else sys.stdout
    runner = DeepRunner(store=store, settings=load_settings().deep)
    result = runner.resume(args.run_id, on_event=Progress(out), cancel=install_cancel())
    return finish(result, args, out)
