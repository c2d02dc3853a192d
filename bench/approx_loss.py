"""How much pass@1 the arg-max-per-layer approximation loses against the exact DisenLoRA mixture.

The approximation (``bdc_assistant.serve.approx``) is what a server that only takes per-request adapter
scales (llama-server) can do: per layer, only the expert with the largest gate mass, at one scalar scale.
This runs the same bundle, the same settings and the same validation problems twice in one process — the
exact mixture and the approximation (only g changes) — judges every answer in the sandbox and prints pass@1
of each with its 95 % Wilson interval, the paired-bootstrap 95 % interval of approx − exact, and how much of
the gate mass the approximation keeps. Resumable (one results dir per mixture and set under ``--out``).
HumanEval is never used here.

    python bench/approx_loss.py --bundle DIR --json [--sets mbpp-val] [--limit N] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bdc_assistant.config import load_settings
from bdc_assistant.evaluation.datasets import load_dataset
from bdc_assistant.evaluation.metrics import paired_bootstrap_ci95, record_passed, wilson_ci95
from bdc_assistant.evaluation.problem_text import solver_text
from bdc_assistant.evaluation.runner import EvalRun, evaluate
from bdc_assistant.sandbox import sandbox_from_settings
from bdc_assistant.serve.approx import ArgmaxCustomizer, argmax_layer_g
from bdc_assistant.solver.session import open_solver

MIXTURES = ("exact", "argmax")


def kept_mass(customizer: Any, texts: list[str]) -> dict[str, float]:
    """Share of the exact gate mass Σ|g| the arg-max keeps, and how often two problems get different experts."""
    kept, picks = [], []
    for text in texts:
        g = customizer.for_query(text).g
        bundle = customizer.bundle
        approx, experts, _ = argmax_layer_g(g, bundle.K, bundle.r)
        kept.append(float(np.abs(approx).sum() / max(np.abs(g).sum(), 1e-12)))
        picks.append(tuple(int(k) for k in experts))
    return {
        "mean_kept_gate_mass": round(float(np.mean(kept)), 4),
        "distinct_expert_choices": len(set(picks)),
        "problems": len(texts),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", required=True, help="the DisenLoRA bundle dir (must fit the configured base)")
    ap.add_argument("--sets", default="mbpp-val")
    ap.add_argument("--limit", type=int, default=None, help="first N problems of every set")
    ap.add_argument("--out", type=Path, default=Path("out/approx_loss"))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    settings = load_settings()
    solver = open_solver(settings, bundle=args.bundle)
    if solver.customizer is None:
        print(f"The bundle {args.bundle} did not apply: {solver.bundle_note}", file=sys.stderr)
        return 2
    exact = solver.customizer
    t0 = time.time()
    report: dict[str, Any] = {"model": solver.generator.model_id, "bundle": solver.bundle_name, "sets": {}}
    pooled: dict[str, list[bool]] = {m: [] for m in MIXTURES}
    try:
        with sandbox_from_settings(settings) as sandbox:
            for name in args.sets.split(","):
                problems = load_dataset(name, args.limit)
                row: dict[str, Any] = {"problems": len(problems)}
                outcomes: dict[str, list[bool]] = {}
                for mixture in MIXTURES:
                    solver.customizer = exact if mixture == "exact" else ArgmaxCustomizer(exact)
                    run = EvalRun(args.out / f"{name}-{mixture}", name)
                    summary = evaluate(problems, solver, sandbox, run)
                    records = run.done()
                    outcomes[mixture] = [bool(record_passed(records[p.id])) for p in problems]
                    k = sum(outcomes[mixture])
                    row[mixture] = {
                        "solved": k,
                        "pass_at_1": round(100 * k / len(problems), 2),
                        "ci95": wilson_ci95(k, len(problems)),
                        "tokens": summary["tokens"],
                        "seconds": summary["seconds"],
                    }
                    pooled[mixture] += outcomes[mixture]
                    print(f"{name} {mixture}: {k}/{len(problems)}", file=sys.stderr)
                row["argmax_minus_exact_ci95"] = paired_bootstrap_ci95(outcomes["exact"], outcomes["argmax"])
                row["gates"] = kept_mass(exact, [solver_text(p) for p in problems])
                report["sets"][name] = row
    finally:
        solver.customizer = exact
        solver.close()
    report["argmax_minus_exact_points"] = round(
        100 * (sum(pooled["argmax"]) - sum(pooled["exact"])) / max(len(pooled["exact"]), 1), 2
    )
    report["argmax_minus_exact_pooled_ci95"] = paired_bootstrap_ci95(pooled["exact"], pooled["argmax"])
    report["wall_s"] = round(time.time() - t0, 1)
    print(json.dumps(report) if args.json else json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
