"""Where llama.cpp's per-token LoRA cost goes: decode overhead of adapters on subsets of the projections.

llama.cpp applies a LoRA unmerged, four graph nodes per adapted matrix (A·x, B·(A x), scale, add). This bench
times greedy decode of the embedded base with random K=3, r=4 adapters on a few projection subsets, each in
paired plain/custom rounds (ABBA), and reports the extra milliseconds per token and per adapted matrix. If the
cost were per graph node, every subset would cost the same per matrix; if it follows the matrix's output rows
(B·(A x) and the add run over them), gate/up (4864 rows on Qwen2.5-0.5B) cost several times k/v (128 rows).

    python bench/lora_cost.py --json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bdc_assistant.machine import cpu_name  # noqa: E402

SUBSETS: dict[str, tuple[str, ...]] = {
    "k+v": ("k_proj", "v_proj"),
    "q+o": ("q_proj", "o_proj"),
    "gate+up": ("gate_proj", "up_proj"),
    "down": ("down_proj",),
    "all 7": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--model", default="coder-0.5b")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--adapter-dtype", choices=("auto", "f16", "f32", "q8_0"), default="f16")
    args = parser.parse_args(argv)

    import numpy as np

    sys.path.insert(0, str(REPO / "bench"))
    from customize import PROMPTS, _side_by_side

    from bdc_assistant.backends.llamacpp_backend import LlamaCppGenerator
    from bdc_assistant.disen.bundle import load_bundle
    from bdc_assistant.disen.compose import Customization
    from bdc_assistant.disen.llamacpp_adapter import LlamaCppAdapterSlot
    from bdc_assistant.disen.random_bundle import make_random_bundle
    from bdc_assistant.models.embedded import cached_sha256, install_solver
    from bdc_assistant.paths import app_paths

    gguf = install_solver(args.model)
    gen = LlamaCppGenerator(gguf, n_ctx=1024, threads=args.threads)
    ids = gen.tokenize(PROMPTS[0])
    rows: dict[str, Any] = {}
    try:
        for name, targets in SUBSETS.items():
            out = (
                app_paths().cache_dir / "bench" / f"lora-cost-{cached_sha256(gguf)[:12]}-{'-'.join(targets)}"
            )
            if not (out / "manifest.json").exists():
                make_random_bundle(
                    gguf, out, K=3, r=4, seed=0, scale=0.05, spread_gates=True, targets=targets
                )
            bundle = load_bundle(out)
            g = np.random.default_rng(0).uniform(0, 1, (bundle.n_layers, bundle.K * bundle.r))
            custom = Customization.from_g(bundle, g.astype(np.float32))
            gen._slot = LlamaCppAdapterSlot(gen.llama, dtype=args.adapter_dtype)
            dec = _side_by_side(
                gen,
                ids,
                args.tokens,
                args.rounds,
                lambda c=custom: gen.set_customization(c),
                lambda: gen.set_customization(None),
            )
            n = len(list(bundle.cat.layer_modules()))
            extra_ms = 1e3 / dec["custom_tok_s"] - 1e3 / dec["plain_tok_s"]
            out_rows = sum(bundle.cat.B[k].shape[0] for k in bundle.cat.layer_modules())
            rows[name] = {
                "matrices": n,
                "output_rows": out_rows,
                "decode_ratio": dec["ratio"],
                "ratios": dec["ratios"],
                "plain_tok_s": dec["plain_tok_s"],
                "custom_tok_s": dec["custom_tok_s"],
                "extra_ms_per_token": round(extra_ms, 3),
                "extra_us_per_matrix": round(extra_ms * 1e3 / n, 1),
                "extra_ns_per_output_row": round(extra_ms * 1e6 / out_rows, 1),
            }
            gen.set_customization(None)
            gen._slot.close()
    finally:
        gen.close()
    result = {
        "bench": "lora_cost",
        "model": gguf.name,
        "cpu": cpu_name(),
        "threads": args.threads,
        "tokens": args.tokens,
        "rounds": args.rounds,
        "adapter_dtype": args.adapter_dtype,
        "subsets": rows,
    }
    if args.json:
        print(json.dumps(result))
    else:
        for name, row in rows.items():
            print(f"{name:>8}: {row}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
