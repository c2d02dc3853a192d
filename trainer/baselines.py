"""The ``baselines`` stage: TIES and DARE merges of the K experts (:mod:`.merges`), each shipped as a
one-expert static bundle (:mod:`.static`), and the TWIN row (:mod:`.twin`: shared merge + routed exclusive
parts) as a K-expert bundle with a router — so the evaluation runs every row like the DisenLoRA one.
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
        if method == "twin":
            out[method] = twin_row(ctx, mdir, shared_rank=rank)
            continue
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


def twin_row(ctx: Context, mdir: Any, *, shared_rank: int) -> dict[str, Any]:
    """Twin-Merging of the experts into ``mdir/bundle``: Ŝ at ``shared_rank`` (the TIES row's rank),
    exclusive parts at ``baselines.twin_rank`` (0 = r), router trained on the training problems' clusters
    (the cosine router when asked for, or when there is nothing to train it on)."""
    from .routing import nearest_cluster, normalize_rows
    from .twin import RouterConfig, build_twin_experts, cosine_router_state, save_twin_bundle, train_router

    cfg = ctx.cfg
    b = cfg.baselines
    assign = art.assignments(ctx)
    cents = normalize_rows(art.centroids(ctx))
    twin_experts, metrics = build_twin_experts(
        art.expert_dirs(ctx),
        shared=b.twin_shared,
        density=b.density,
        shared_rank=shared_rank,
        exclusive_rank=b.twin_rank or cfg.lora.r,
        seed=cfg.run.seed,
        out_dir=mdir / "experts",
    )
    rcfg = RouterConfig()
    train = art.records(ctx, "train")
    labels = np.asarray(assign["labels"], np.int64)
    if b.twin_router == "trained" and train and len(set(labels.tolist())) > 1:
        e = art.embed(art.encoder(ctx), [x.problem for x in train], "embed problems")
        router, fit = train_router(e, cents, labels, rcfg, cfg.run.seed)
        fit["router_cosine_accuracy"] = round(float(np.mean(nearest_cluster(e, cents) == labels)), 4)
        metrics.update(router="trained", **fit)
    else:  # asked for, or nothing to train on (one cluster, no records)
        router = cosine_router_state(cents.shape[1], cents.shape[0], rcfg.temperature)
        metrics.update(router="cosine", temperature=rcfg.temperature)
    save_twin_bundle(
        mdir / "bundle",
        twin_experts,
        router,
        router_kind=metrics["router"],
        base=art.base_ref(ctx).identity,
        encoder=art.encoder_info(ctx),
        centroids=cents,
        names=list(assign["names"]),
        provenance=art.provenance(ctx),
        metrics=metrics,
    )
    return metrics
