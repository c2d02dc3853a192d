"""Pool the paired runs of several ``bench/serve.py`` results: HTTP ÷ in-process, with a bootstrap 95 % CI.

One ``serve.py`` run has 12–36 pairs per kind and its paired median moves by ±5 % from run to run on a
2-core machine; pooling the runs of one machine gives the estimate the ≤ 5 % goal is read against.

    python bench/serve_pooled.py bench/results/serve_qwen05b_amd_lazybegin.json bench/results/serve_qwen05b_amd_12x.json
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from pathlib import Path
from typing import Any


def _ci(xs: list[float], rounds: int = 4000, seed: int = 0) -> tuple[float, float]:
    rng = random.Random(seed)
    meds = sorted(statistics.median(rng.choices(xs, k=len(xs))) for _ in range(rounds))
    return meds[int(0.025 * rounds)], meds[int(0.975 * rounds) - 1]


def pooled(results: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"runs": len(results)}
    for kind in ("completions", "chat"):
        pairs = [p for r in results for p in r.get("runs", {}).get(kind, [])]
        ttft = [
            p["http"]["ttft"] / p["inproc"]["ttft"] - 1
            for p in pairs
            if p["http"]["ttft"] and p["inproc"]["ttft"]
        ]
        # decode overhead: how much slower HTTP streams, as in serve.py's overhead_*_tok_s
        rate = [
            p["inproc"]["tok_s"] / p["http"]["tok_s"] - 1
            for p in pairs
            if p["http"]["tok_s"] and p["inproc"]["tok_s"]
        ]
        for name, xs in (("ttft", ttft), ("tok_s", rate)):
            if xs:
                lo, hi = _ci(xs)
                out[f"{kind}_{name}_overhead"] = {
                    "pairs": len(xs),
                    "median": round(statistics.median(xs), 4),
                    "ci95": [round(lo, 4), round(hi, 4)],
                }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("results", nargs="+", type=Path, help="bench/serve.py --json outputs of one machine")
    parser.add_argument("--out", type=Path, help="also write the pooled JSON here")
    args = parser.parse_args(argv)
    try:
        results = [json.loads(p.read_text()) for p in args.results]
    except (OSError, ValueError) as exc:
        print(f"error: a result file could not be read as bench/serve.py JSON: {exc}.", file=sys.stderr)
        return 2
    cpus = {r.get("machine", {}).get("cpu") for r in results}
    if len(cpus) > 1:
        print(
            f"error: the results come from different machines ({', '.join(map(str, cpus))}).", file=sys.stderr
        )
        return 2
    report = {"files": [p.name for p in args.results], "cpu": cpus.pop(), **pooled(results)}
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
