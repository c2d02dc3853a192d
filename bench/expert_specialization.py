"""Do the experts specialise? Answer-token loss of the base and of every trained adapter, per cluster, on
problems never trained on.

For a finished trainer run (``--run OUT``), the held-out validation problems of the bootstrap sets (their
reference solutions, the same pair kinds and prompts the run trained on) are assigned to their nearest
centroid with the run's encoder and embedded fields, and the mean answer-token cross-entropy of the base,
each expert and SFT-on-all is measured per cluster. An expert that specialises has its lowest loss on its
own cluster, below the base and below the other experts there (issue: "validation loss of each expert on its
own cluster clearly below the base and below the other experts").

    python bench/expert_specialization.py --run OUT --json [--limit N]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True, help="a trainer output dir with finished sft")
    ap.add_argument("--limit", type=int, default=0, help="first N held-out problems per set (0 = all)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import torch
    from peft import PeftModel

    from bdc_assistant.evaluation.splits import is_validation_id
    from trainer import artifacts as art
    from trainer.config import load_config
    from trainer.data import bootstrap
    from trainer.modeling import encode, eval_loss, load_base
    from trainer.pairs import build_pairs
    from trainer.runner import Context

    cfg = load_config(args.run / "config.resolved.toml", [])
    ctx = Context(cfg, args.run)
    held = [
        r
        for r in bootstrap(list(cfg.data.bootstrap), cfg.data.bootstrap_dir, 0)
        if is_validation_id(r.problem_id)
    ]
    if args.limit:
        held = held[: args.limit]
    assign = art.assignments(ctx)
    texts = ["\n".join(getattr(r, f) for f in cfg.cluster.embed_fields) for r in held]
    e = art.embed(art.encoder(ctx), texts, "embed held-out problems")
    labels = (e @ art.centroids(ctx).T).argmax(axis=1)
    ref = art.base_ref(ctx)
    model, tok, device = load_base(ref, cfg)
    pad = int(tok.pad_token_id)
    names = [f"expert_{k}" for k in range(int(assign["k"]))] + ["sft_all"]
    model = PeftModel.from_pretrained(model, str(ctx.dir("sft") / names[0]), adapter_name=names[0])
    for name in names[1:]:
        model.load_adapter(str(ctx.dir("sft") / name), adapter_name=name)
    model.eval()
    by_cluster: dict[str, dict[str, float | None]] = {}
    counts: dict[str, int] = {}
    for j, cname in enumerate(assign["names"]):
        recs = [held[i] for i in np.flatnonzero(labels == j)]
        counts[cname] = len(recs)
        ex = encode(
            tok, build_pairs(recs, ref.prompt_style, cfg.sft.pair_kinds), cfg.sft.max_len, ref.prompt_style
        )
        row: dict[str, float | None] = {}
        with model.disable_adapter():
            row["base"] = eval_loss(model, ex, pad, device, 1)
        for name in names:
            model.set_adapter(name)
            row[name] = eval_loss(model, ex, pad, device, 1)
        by_cluster[cname] = {k: (None if v is None else round(v, 4)) for k, v in row.items()}
        print(f"{cname} ({len(recs)}): {by_cluster[cname]}", file=sys.stderr)
    own_best = {
        f"expert_{j}": _own_is_best(by_cluster.get(c, {}), f"expert_{j}", names[:-1])
        for j, c in enumerate(assign["names"])
    }
    report: dict[str, Any] = {
        "run": cfg.run.name,
        "held_out_problems": len(held),
        "problems_per_cluster": counts,
        "loss_by_cluster": by_cluster,
        "own_expert_below_base_and_other_experts": own_best,
        "torch": torch.__version__,
    }
    print(json.dumps(report) if args.json else json.dumps(report, indent=2))
    return 0


def _own_is_best(row: dict[str, float | None], own: str, experts: list[str]) -> bool | None:
    if row.get(own) is None or row.get("base") is None:
        return None
    others = [row[x] for x in experts if x != own and row.get(x) is not None]
    return bool(row[own] < row["base"] and all(row[own] < o for o in others))  # type: ignore[operator]


if __name__ == "__main__":
    sys.exit(main())
