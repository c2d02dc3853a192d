"""Which solver mode ships: two-stage (plan, then code) vs one turn, on the fixed validation split.

Runs the local solver (default settings, greedy, the configured base) over ``mbpp-val`` and
``codecontests-val`` once per mode, judges every answer in the sandbox, and prints side by side: pass@1 with
its 95 % Wilson interval per mode and set, and the paired-bootstrap 95 % interval of on − off. Results are
resumable (one results dir per mode and set under ``--out``). HumanEval is never used here.

    python bench/solver_modes.py --json [--sets mbpp-val,codecontests-val] [--limit N]
        [--limits codecontests-val=30] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bdc_assistant.config import load_settings
from bdc_assistant.evaluation.datasets import load_dataset
from bdc_assistant.evaluation.metrics import paired_bootstrap_ci95, record_passed, wilson_ci95
from bdc_assistant.evaluation.runner import EvalRun, evaluate
from bdc_assistant.sandbox import sandbox_from_settings
from bdc_assistant.solver.session import Solver, open_solver

MODES = ("off", "on")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", default="mbpp-val,codecontests-val")
    ap.add_argument("--limit", type=int, default=None, help="first N problems of every set")
    ap.add_argument(
        "--limits",
        default="",
        help="per-set limits, e.g. codecontests-val=30 (overrides --limit for that set)",
    )
    ap.add_argument("--out", type=Path, default=Path("out/solver_modes"))
    ap.add_argument("--bundle", default="none", help="bundle for both modes (default: the plain base)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    limits = {k: int(v) for k, v in (kv.split("=") for kv in args.limits.split(",") if kv)}
    settings = load_settings()
    base_solver = open_solver(settings, bundle=args.bundle)
    t0 = time.time()
    per_problem: dict[str, dict[str, list[bool]]] = {}
    report: dict[str, Any] = {"model": base_solver.generator.model_id, "style": base_solver.style, "sets": {}}
    try:
        with sandbox_from_settings(settings) as sandbox:
            for name in args.sets.split(","):
                problems = load_dataset(name, limits.get(name, args.limit))
                outcomes: dict[str, list[bool]] = {}
                row: dict[str, Any] = {"problems": len(problems)}
                for mode in MODES:
                    mode_settings = settings.model_copy(
                        update={"solver": settings.solver.model_copy(update={"plan": mode})}
                    )
                    solver = Solver(
                        mode_settings,
                        base_solver.generator,
                        base_solver.style,
                        base_solver.customizer,
                        base_solver.bundle_name,
                        base_solver.bundle_note,
                    )
                    run = EvalRun(args.out / f"{name}-plan-{mode}", name)
                    summary = evaluate(problems, solver, sandbox, run)
                    records = {r["id"]: r for r in run.done().values()}
                    outcomes[mode] = [bool(record_passed(records[p.id])) for p in problems]
                    k = sum(outcomes[mode])
                    row[f"plan_{mode}"] = {
                        "solved": k,
                        "pass_at_1": round(100 * k / len(problems), 2),
                        "ci95": wilson_ci95(k, len(problems)),
                        "tokens": summary["tokens"],
                        "seconds": summary["seconds"],
                    }
                    print(f"{name} plan={mode}: {k}/{len(problems)}", file=sys.stderr)
                row["on_minus_off_ci95"] = paired_bootstrap_ci95(outcomes["off"], outcomes["on"])
                per_problem[name] = outcomes
                report["sets"][name] = row
    finally:
        base_solver.close()
    total = {m: sum(r[f"plan_{m}"]["solved"] for r in report["sets"].values()) for m in MODES}
    report["total_solved"] = total
    # Two stages cost a second turn: ship them only when the gain is more than noise (the paired 95 % interval
    # of on − off over all validation problems lies above zero); otherwise the cheaper one turn.
    pooled = {m: [x for r in per_problem.values() for x in r[m]] for m in MODES}
    report["on_minus_off_pooled_ci95"] = paired_bootstrap_ci95(pooled["off"], pooled["on"])
    report["winner"] = "on" if report["on_minus_off_pooled_ci95"][0] > 0 else "off"
    report["wall_s"] = round(time.time() - t0, 1)
    if args.json:
        print(json.dumps(report))
    else:
        print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
