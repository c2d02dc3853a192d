"""How one training recipe does across several runs, each problem's pass fraction pooled over runs and samples.

A Table-2 run trains one bundle; its training seed alone moves a greedy row by a couple of problems. This
reads the answers several ``python -m trainer evaluate`` runs already wrote (their ``evaluate_runs/<key>/``
directories: one per sample, ``<set>`` and ``<set>.s<i>``), and prints side by side, per run and pooled:
the base's and the candidate row's pass@1 (mean over answers) and the paired-bootstrap 95 % interval of
candidate − base over problems. Pooled, a problem's outcome is the mean over every run's answers, so the
interval is the recipe's, not one bundle's. Nothing is answered here.

    python bench/pooled_rows.py RUN_DIR [RUN_DIR ...] [--set mbpp-val] [--row disenlora] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainer.verdict import outcomes_by_id, paired_difference

BASE_DIR = "w-o-tuning-base"


def answers(row_dir: Path, dataset: str) -> list[dict[str, Any]]:
    """The harness records of every sample directory of one row (a problem once per sample)."""
    out: list[dict[str, Any]] = []
    for sample_dir in sorted(row_dir.glob(f"{dataset}*")):
        if sample_dir.name != dataset and not sample_dir.name.startswith(dataset + ".s"):
            continue
        lines = (sample_dir / "results.jsonl").read_text(encoding="utf-8").splitlines()
        out += [json.loads(line) for line in lines]
    return out


def sampled_key(run_dir: Path, dataset: str) -> Path:
    """The answer cache with the most samples of ``dataset`` (a run may also hold its greedy answers)."""
    keys = [k for k in (run_dir / "evaluate_runs").iterdir() if (k / BASE_DIR).is_dir()]
    if not keys:
        raise SystemExit(f"{run_dir} has no evaluated base row")
    return max(keys, key=lambda k: len(list((k / BASE_DIR).glob(f"{dataset}*"))))


def compare(base: list[dict[str, Any]], mine: list[dict[str, Any]]) -> dict[str, Any]:
    """Each problem's pass fraction in both rows, paired as the trainer's report pairs them."""
    ids = list(dict.fromkeys(str(rec["id"]) for rec in base))  # the set's order
    b, m = outcomes_by_id(base, ids), outcomes_by_id(mine, ids)
    if b is None or m is None:
        raise SystemExit("the base and the row did not answer the same problems")
    d = paired_difference(b, m)
    return {
        "problems": len(ids),
        "answers_per_problem": {"base": len(base) // len(ids), "row": len(mine) // len(ids)},
        "base_pass_at_1": round(100 * sum(b) / len(ids), 2),
        "row_pass_at_1": round(100 * sum(m) / len(ids), 2),
        "diff": d["diff"],
        "ci95": d["ci95"],
        "row_ahead": sum(x > y for x, y in zip(m, b, strict=True)),
        "row_behind": sum(x < y for x, y in zip(m, b, strict=True)),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path, help="trainer output directories (evaluate stage done)")
    ap.add_argument("--set", default="mbpp-val", dest="dataset")
    ap.add_argument("--row", default="disenlora", help="the candidate row's directory prefix")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    report: dict[str, Any] = {"set": args.dataset, "row": args.row, "runs": {}}
    pooled_base: list[dict[str, Any]] = []
    pooled_row: list[dict[str, Any]] = []
    for run in args.runs:
        key = sampled_key(run, args.dataset)
        rows = sorted(key.glob(f"{args.row}-*"))
        if len(rows) != 1:
            raise SystemExit(f"{key} has {len(rows)} '{args.row}' rows; expected one")
        base, mine = answers(key / BASE_DIR, args.dataset), answers(rows[0], args.dataset)
        report["runs"][str(run)] = compare(base, mine) | {"answers": key.name}
        # runs that share the answer cache hold the same base answers: pooled, their fractions stay the same
        pooled_base += base
        pooled_row += mine
    report["pooled"] = compare(pooled_base, pooled_row)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{'run':<40} {'base':>7} {args.row:>10} {'diff [95% CI]':>24} ahead/behind")
    for name, r in [*report["runs"].items(), ("pooled", report["pooled"])]:
        ci = f"{r['diff']:+.2f} [{r['ci95'][0]:+.2f}, {r['ci95'][1]:+.2f}]"
        print(
            f"{name[-40:]:<40} {r['base_pass_at_1']:>7.2f} {r['row_pass_at_1']:>10.2f} {ci:>24} "
            f"{r['row_ahead']}/{r['row_behind']}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
