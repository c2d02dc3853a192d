"""Does the customization path itself change answers? A bundle whose experts are exactly zero must answer like
the plain base, token for token.

When every trained bundle scores below the base, the first suspect is the path, not the training: a
per-query adapter that reorders a computation, a prompt built differently, a cache reused differently. This
writes a valid bundle for the embedded base whose LoRA B matrices are all zero (ΔW = 0, gates as a random
hypernetwork gives them), answers the first N ``mbpp-val`` problems greedily through the app's solver with
and without it (the settings the trainer's Table 2 uses: one turn, no retries, 384 tokens), and prints how
many answers are identical, with the first differences.

    python bench/zero_delta.py [--limit 20] [--backend llamacpp] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bdc_assistant.config import load_settings
from bdc_assistant.disen.random_bundle import make_random_bundle
from bdc_assistant.evaluation.datasets import load_dataset
from bdc_assistant.evaluation.problem_text import solver_text
from bdc_assistant.models.embedded import base_gguf_path
from bdc_assistant.solver.session import open_solver


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=20)
    ap.add_argument("--backend", default="llamacpp")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    gguf = base_gguf_path()
    problems = list(load_dataset("mbpp-val", args.limit))
    with tempfile.TemporaryDirectory() as tmp:
        bundle = make_random_bundle(gguf, Path(tmp) / "zero", K=3, r=4, scale=0.0, spread_gates=True)
        settings = load_settings(
            config_file=Path(tmp) / "no-user-config.toml",
            models={"base_gguf": str(gguf)},
            backend={"name": args.backend, "seed": 0},
            solver={"max_tokens": 384, "temperature": 0.0, "repair_rounds": 0},
        )
        codes: dict[str, list[str]] = {}
        seconds: dict[str, float] = {}
        for label, which in (("plain", "none"), ("zero_delta", str(bundle))):
            solver = open_solver(settings, backend=args.backend, bundle=which)
            t0 = time.monotonic()
            try:
                codes[label] = []
                for p in problems:
                    solver.forget_prompt_cache()
                    codes[label].append(solver.answer(solver_text(p), max_tokens=384).code)
            finally:
                solver.close()
            seconds[label] = round(time.monotonic() - t0, 1)
    differ = [p.id for p, a, b in zip(problems, codes["plain"], codes["zero_delta"], strict=True) if a != b]
    report: dict[str, Any] = {
        "bench": "zero_delta",
        "backend": args.backend,
        "model": gguf.name,
        "problems": len(problems),
        "identical": len(problems) - len(differ),
        "differ": differ,
        "seconds": seconds,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(
            f"{report['identical']}/{len(problems)} answers identical with a zero-delta bundle ({args.backend})"
        )
        for pid in differ[:3]:
            i = [p.id for p in problems].index(pid)
            print(f"--- {pid}\n{codes['plain'][i][-300:]}\n+++\n{codes['zero_delta'][i][-300:]}")
    return 0 if not differ else 1


if __name__ == "__main__":
    raise SystemExit(main())
