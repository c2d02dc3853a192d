"""The ``baselines`` stage: TIES and DARE merges of the K experts (:mod:`.merges`), each shipped as a
one-expert static bundle (:mod:`.static`) so the evaluation runs it like every other row.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from . import artifacts as art
from .merges import merge_experts
from .static import save_static_bundle

if TYPE_CHECKING:
    from .runner import Context


def stage_baselines(ctx: Context) -> dict[str, Any]:
    cfg = ctx.cfg
    ref = art.base_ref(ctx)
    experts = art.expert_dirs(ctx)
    rank = cfg.baselines.svd_rank or len(experts) * cfg.lora.r
    cents = art.centroids(ctx)
    mean_c = cents.mean(axis=0)
    out: dict[str, Any] = {}
    for method in cfg.baselines.methods:
        mdir = ctx.dir("baselines") / method
        out[method] = merge_experts(
            experts,
            method,
            density=cfg.baselines.density,
            rank=rank,
            seed=cfg.run.seed,
            out_dir=mdir / "adapter",
        )
        save_static_bundle(
            mdir / "bundle",
            mdir / "adapter",
            base=ref.identity,
            encoder=art.encoder_info(ctx),
            centroid=mean_c if np.linalg.norm(mean_c) > 1e-6 else cents[0],
            name=method,
            provenance=art.provenance(ctx),
        )
    return out
