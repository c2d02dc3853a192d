"""What the upstream stages wrote, read back by the stages downstream of them (and the shared helpers those
reads need: the encoder, the base model reference, the provenance every bundle records).
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import data as data_mod

if TYPE_CHECKING:
    from .modeling import BaseRef
    from .runner import Context


def records(ctx: Context, split: str) -> list[data_mod.Trajectory]:
    return (
        list(data_mod.read_jsonl(ctx.dir("data") / f"{split}.jsonl"))
        if (ctx.dir("data") / f"{split}.jsonl").exists()
        else []
    )


def rejected(ctx: Context) -> list[data_mod.Trajectory]:
    """The failing programs the data stage kept for preference pairs (none unless ``data.negatives``)."""
    return records(ctx, "negatives")


def encoder(ctx: Context) -> Any:
    from bdc_assistant.encoder import Encoder
    from bdc_assistant.models.embedded import encoder_path

    path = Path(ctx.cfg.cluster.encoder).expanduser() if ctx.cfg.cluster.encoder else encoder_path()
    return Encoder(path)


def embed(encoder: Any, texts: list[str], desc: str) -> np.ndarray:
    from tqdm import tqdm

    chunks = [texts[i : i + 64] for i in range(0, len(texts), 64)]
    quiet = len(chunks) < 2 or os.environ.get("BDC_NO_PROGRESS") == "1"
    out = [encoder.embed(c) for c in tqdm(chunks, desc=desc, unit="batch", disable=quiet)]
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 1), np.float32)


def centroids(ctx: Context) -> np.ndarray:
    from bdc_assistant.disen.safetensors_io import read_safetensors

    return read_safetensors(ctx.dir("cluster") / "centroids.safetensors")["centroids"]


def assignments(ctx: Context) -> dict[str, Any]:
    return json.loads((ctx.dir("cluster") / "assignments.json").read_text())


def encoder_info(ctx: Context) -> dict[str, Any]:
    return dict(ctx.record("cluster")["metrics"]["encoder"])


def base_ref(ctx: Context) -> BaseRef:
    from .modeling import resolve_base

    return resolve_base(ctx.cfg, ctx.out / "base")


def training_steps(ctx: Context) -> dict[str, Any]:
    """Optimizer steps per adapter (and examples it saw) and for f, from the stage records."""
    sft = ctx.record("sft")["metrics"]
    hyp = ctx.record("hypernet")["metrics"]
    steps: dict[str, Any] = {
        name: {"steps": a.get("steps"), "examples": a.get("examples")}
        for name, a in sft.get("adapters", {}).items()
    }
    steps["hypernet"] = {
        "steps": hyp.get("steps"),
        "route_warmup": (hyp.get("route_warmup") or {}).get("steps"),
    }
    return steps


def trained_on(ctx: Context) -> dict[str, Any]:
    """Where the experts and f were trained (each stage's ``device_info``)."""
    return {stage: ctx.record(stage)["metrics"].get("runtime") for stage in ("sft", "hypernet")}


def provenance(ctx: Context) -> dict[str, Any]:
    """What every bundle the trainer writes says of its data (the exported bundle adds ``steps`` and
    ``trained_on``, from :func:`training_steps` and :func:`trained_on`: the stages they read have finished only
    by then)."""
    drec = ctx.record("data")["metrics"]
    return {
        "run_name": ctx.cfg.run.name,
        "data_hash": ctx.data_hash(),
        "trajectories": {"train": drec["train"], "validation": drec["validation"]},
        "sources": drec.get("sources", {}),
        "bootstrap": drec.get("bootstrap_note"),
        "app_trajectories_seen": drec.get("app_trajectories_seen", 0),
        "trainer": "python -m trainer (bdc-assistant)",
    }


def expert_dirs(ctx: Context) -> list[Path]:
    k = int(assignments(ctx)["k"])
    return [ctx.dir("sft") / f"expert_{i}" for i in range(k)]


def encoded_examples(ctx: Context, tok: Any, style: str, max_len: int) -> tuple[list, list, list, list]:
    from .modeling import encode
    from .pairs import build_pairs

    train, val = records(ctx, "train"), records(ctx, "val")
    kinds = ctx.cfg.sft.pair_kinds
    align = ctx.cfg.sft.align_to_stub
    p_tr = build_pairs(train, style, kinds, align=align)  # type: ignore[arg-type]
    p_val = build_pairs(val, style, kinds, align=align)  # type: ignore[arg-type]
    ex_val = encode(tok, p_val, max_len, style)
    cap = ctx.cfg.sft.val_examples
    if cap and len(ex_val) > cap:  # a fixed, seeded subset: every adapter is scored on the same pairs
        ex_val = sorted(random.Random(ctx.cfg.run.seed).sample(ex_val, cap), key=lambda e: e.pair)
    return p_tr, encode(tok, p_tr, max_len, style), p_val, ex_val


def preference_examples(ctx: Context, tok: Any, style: str, max_len: int) -> tuple[list, list]:
    """(train, validation) preference examples: each split's verified programs over the failing ones of the
    same problems (:mod:`.preference`); ``record`` indexes the split's trajectories, as a pair's does."""
    from .preference import encode_preferences, preference_pairs

    negatives = rejected(ctx)
    out = []
    for split in ("train", "val"):
        prefs = preference_pairs(
            records(ctx, split),
            negatives,
            style,  # type: ignore[arg-type]
            ctx.cfg.sft.pair_kinds,
            align=ctx.cfg.sft.align_to_stub,
        )
        out.append(encode_preferences(tok, prefs, max_len, style))
    return out[0], out[1]
