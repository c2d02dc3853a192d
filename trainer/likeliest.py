"""Per problem, the verified programs the base itself finds likeliest — on-policy selection of training data.

``python -m trainer.likeliest --config FILE.toml [--set key=value ...] --per-problem N --out FILE.jsonl``

Why: the verified programs of a stronger writer move the tuned base towards that writer's style more than
towards correctness (trainer/README.md: "Does DisenLoRA beat the base on mbpp-val?"). Among the verified
programs of one problem, the one with the lowest answer-token cross-entropy under the base is the smallest
step from what the base would write; training on it moves probability towards a correct program while
changing the base's behaviour as little as possible.

The config's data section says what is read (its inputs and, with ``app_trajectories``, the app's exports;
negatives and validation problems dropped, deduped and filtered exactly as the data stage does); each
trajectory is scored as the SFT stage would train on it (its ``sft.pair_kinds`` pairs, ``sft.align_to_stub``,
the base's prompt style, ``sft.max_len``), and the ``N`` lowest per problem are written in the trajectory
schema with ``base_ce`` added. The summary (lines
read and kept, problems, mean CE kept vs all, seconds) is printed and written to ``FILE.summary.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bdc_assistant import atomic
from bdc_assistant.errors import BdcError, ConfigError

from .data import Trajectory


def likeliest(records: Sequence[Trajectory], scores: Sequence[float | None], per_problem: int) -> list[int]:
    """Indices of the ``per_problem`` lowest-scoring records of each problem, in input order; a record
    without a score (nothing to train on) is never kept."""
    if per_problem < 1:
        raise ConfigError(f"--per-problem must be at least 1 (got {per_problem}).")
    by_problem: dict[str, list[int]] = {}
    for i, rec in enumerate(records):
        if scores[i] is not None:
            by_problem.setdefault(rec.group(), []).append(i)
    keep: set[int] = set()
    for idx in by_problem.values():
        keep.update(sorted(idx, key=lambda i: (scores[i], i))[:per_problem])
    return sorted(keep)


def score(records: Sequence[Trajectory], cfg: Any, scratch: Path) -> list[float | None]:
    """Answer-token CE of each record's SFT pairs under the plain base (token-weighted mean over its pairs)."""
    import os

    from tqdm import tqdm

    from .modeling import encode, eval_loss, load_base, resolve_base
    from .pairs import build_pairs

    ref = resolve_base(cfg, scratch / "base")
    model, tok, device = load_base(ref, cfg)
    out: list[float | None] = []
    quiet = os.environ.get("BDC_NO_PROGRESS") == "1"
    for rec in tqdm(records, desc="score", unit="program", disable=quiet, mininterval=10):
        pairs = build_pairs([rec], ref.prompt_style, cfg.sft.pair_kinds, align=cfg.sft.align_to_stub)  # type: ignore[arg-type]
        examples = encode(tok, pairs, cfg.sft.max_len, ref.prompt_style)
        out.append(eval_loss(model, examples, int(tok.pad_token_id), device, 1))
    return out


def run(config: Path | None, overrides: list[str], per_problem: int, out: Path) -> dict[str, Any]:
    from .config import load_config
    from .data import build_configured, configured_inputs

    if per_problem < 1:  # before the base is loaded
        raise ConfigError(f"--per-problem must be at least 1 (got {per_problem}).")
    cfg = load_config(config, overrides)
    t0 = time.monotonic()
    files, _ = configured_inputs(cfg.data)
    # every usable record is a candidate: the train/validation split is the training run's business
    train, val, report = build_configured(cfg.data, files, cfg.run.seed, val_fraction=0.0)
    records = train + val
    with tempfile.TemporaryDirectory(prefix="bdc-likeliest-") as scratch:
        scores = score(records, cfg, Path(scratch))
    kept = likeliest(records, scores, per_problem)
    lines = [json.dumps(records[i].as_dict() | {"base_ce": round(float(scores[i] or 0), 5)}) for i in kept]
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(out, "".join(line + "\n" for line in lines))
    scored = [s for s in scores if s is not None]
    summary = {
        "config": str(config) if config else None,
        "overrides": overrides,
        "per_problem": per_problem,
        "read": report.read,
        "candidates": len(records),
        "kept": len(kept),
        "problems": len({records[i].group() for i in kept}),
        "mean_base_ce_all": round(sum(scored) / max(len(scored), 1), 5),
        "mean_base_ce_kept": round(sum(float(scores[i] or 0) for i in kept) / max(len(kept), 1), 5),
        "seconds": round(time.monotonic() - t0, 1),
    }
    atomic.write_text(out.with_name(out.name + ".summary.json"), json.dumps(summary, indent=2) + "\n")
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m trainer.likeliest", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", type=Path, default=None, help="trainer TOML whose data section is read")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    p.add_argument("--per-problem", type=int, default=1, help="programs kept per problem (default 1)")
    p.add_argument("--out", type=Path, required=True, help="the JSONL to write")
    args = p.parse_args(argv)
    try:
        summary = run(args.config, args.overrides, args.per_problem, args.out)
    except BdcError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
