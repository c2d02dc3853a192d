"""The ``cluster`` stage: cosine k-means over encoder embeddings (paper eq. 12) and a 2-D picture.

Objective: maximise Σ_k Σ_{i∈C_k} cos(e_i, μ_k) with μ_k the L2-normalised mean of its members (spherical
k-means; the paper writes "minimize cosine" meaning the cosine *distance*). K is fixed in the config or
chosen in [k_min, k_max] by the highest mean silhouette score under cosine distance — a standard,
documented criterion that needs no labels; ties go to the smaller K. Empty clusters are re-seeded with
the point farthest from its centroid so every expert gets data.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bdc_assistant.errors import DatasetError

from . import artifacts as art

if TYPE_CHECKING:
    from .runner import Context


@dataclass(frozen=True)
class Clustering:
    k: int
    labels: np.ndarray  # [n] int
    centroids: np.ndarray  # [K, d] float32, L2-normalised
    cost: float  # mean cosine distance to the own centroid
    silhouette: dict[int, float]  # K -> score (only when K was searched)


def normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _kmeanspp(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    centers = [x[rng.integers(len(x))]]
    for _ in range(1, k):
        sims = np.max(x @ np.stack(centers).T, axis=1)
        dist = np.clip(1.0 - sims, 0.0, None) ** 2
        total = dist.sum()
        idx = int(rng.integers(len(x))) if total <= 0 else int(rng.choice(len(x), p=dist / total))
        centers.append(x[idx])
    return np.stack(centers)


def spherical_kmeans(
    x: np.ndarray, k: int, *, iters: int, restarts: int, seed: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """Best of ``restarts`` runs: (labels, centroids, mean cosine distance)."""
    x = normalize(x)
    n = len(x)
    if k < 1 or k > n:
        raise DatasetError(f"Cannot make {k} clusters from {n} trajectories.")
    best: tuple[np.ndarray, np.ndarray, float] | None = None
    rng = np.random.default_rng(seed)
    for _ in range(restarts):
        mu = _kmeanspp(x, k, rng)
        labels = np.full(n, -1)
        for _ in range(iters):
            sims = x @ mu.T
            new = np.argmax(sims, axis=1)
            for j in range(k):  # re-seed empty clusters with the worst-served point
                if not np.any(new == j):
                    worst = int(np.argmin(sims[np.arange(n), new]))
                    new[worst] = j
            mu = normalize(np.stack([x[new == j].mean(axis=0) for j in range(k)]))
            if np.array_equal(new, labels):
                break
            labels = new
        cost = float(np.mean(1.0 - np.sum(x * mu[labels], axis=1)))
        if best is None or cost < best[2] - 1e-12:
            best = (labels.copy(), mu.copy(), cost)
    assert best is not None
    return best


def choose_k(
    x: np.ndarray, *, k: int, k_min: int, k_max: int, iters: int, restarts: int, seed: int
) -> Clustering:
    n = len(x)
    if k:
        labels, mu, cost = spherical_kmeans(x, k, iters=iters, restarts=restarts, seed=seed)
        return Clustering(k, labels, mu.astype(np.float32), cost, {})
    from sklearn.metrics import silhouette_score

    hi = min(k_max, n - 1)
    lo = min(max(k_min, 2), hi)
    if hi < 2:
        raise DatasetError(f"Choosing K needs at least 3 trajectories; got {n}.")
    scores: dict[int, float] = {}
    results = {}
    for kk in range(lo, hi + 1):
        labels, mu, cost = spherical_kmeans(x, kk, iters=iters, restarts=restarts, seed=seed)
        score = (
            float(silhouette_score(normalize(x), labels, metric="cosine")) if len(set(labels)) > 1 else -1.0
        )
        scores[kk] = score
        results[kk] = (labels, mu, cost)
    best_k = max(scores, key=lambda kk: (round(scores[kk], 6), -kk))
    labels, mu, cost = results[best_k]
    return Clustering(best_k, labels, mu.astype(np.float32), cost, scores)


_STOP_WORDS = (
    "a an the of to and or in on for with that this is are be by as it its from at if return returns write "
    "function given list number numbers string strings python def which into each all your you we then than "
    "not no can will should one two int str true false input output print integer integers find"
)
_STOP = frozenset(_STOP_WORDS.split(" "))


def cluster_names(texts: list[str], labels: np.ndarray, k: int, words: int = 2) -> list[str]:
    """Short human names: the words most over-represented in each cluster relative to all data."""

    def toks(t: str) -> list[str]:
        return [w for w in re.findall(r"[a-z]{3,}", t.lower()) if w not in _STOP]

    overall = Counter(w for t in texts for w in set(toks(t)))
    n = max(len(texts), 1)
    names: list[str] = []
    for j in range(k):
        members = [t for t, lab in zip(texts, labels, strict=True) if lab == j]
        local = Counter(w for t in members for w in set(toks(t)))
        m = max(len(members), 1)
        ranked = sorted(local, key=lambda w: (-(local[w] / m - overall[w] / n), -local[w], w))
        name = "-".join(ranked[:words]) or f"cluster{j}"
        if name in names:
            name = f"{name}-{j}"
        names.append(name)
    return names


def plot_clusters(x: np.ndarray, labels: np.ndarray, names: list[str], out: Path, seed: int) -> str:
    """t-SNE of the embeddings coloured by cluster (like the paper's Figure 4). Returns the method used."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.manifold import TSNE

    xn = normalize(x)
    n = len(xn)
    if n >= 4:
        perplexity = float(max(2.0, min(30.0, (n - 1) / 3)))
        pts = TSNE(
            n_components=2, perplexity=perplexity, metric="cosine", init="random", random_state=seed
        ).fit_transform(xn)
        method = "t-SNE (cosine)"
    else:  # too few points for t-SNE: first two principal components
        centered = xn - xn.mean(axis=0)
        _, _, vt = np.linalg.svd(centered, full_matrices=False)
        pts = centered @ vt[:2].T if vt.shape[0] >= 2 else np.c_[centered @ vt[:1].T, np.zeros(n)]
        method = "PCA"
    fig, ax = plt.subplots(figsize=(6, 5), dpi=110)
    for j, name in enumerate(names):
        sel = labels == j
        ax.scatter(pts[sel, 0], pts[sel, 1], s=14, alpha=0.8, label=f"{j}: {name} ({int(sel.sum())})")
    ax.set_title(f"{method} of trajectory encodings, K={len(names)}")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return method


# ---- the stage -------------------------------------------------------------------------------------------


def stage_cluster(ctx: Context) -> dict[str, Any]:
    from bdc_assistant.disen.safetensors_io import write_safetensors

    c = ctx.cfg.cluster
    train = art.records(ctx, "train")
    texts = ["\n".join(getattr(r, f) for f in c.embed_fields) for r in train]
    encoder = art.encoder(ctx)
    emb = art.embed(encoder, texts, "embed")
    result = choose_k(
        emb, k=c.k, k_min=c.k_min, k_max=c.k_max, iters=c.iters, restarts=c.restarts, seed=ctx.cfg.run.seed
    )
    names = cluster_names([r.problem for r in train], result.labels, result.k)
    sdir = ctx.dir("cluster")
    write_safetensors(sdir / "centroids.safetensors", {"centroids": result.centroids})
    sizes = [int((result.labels == j).sum()) for j in range(result.k)]
    (sdir / "assignments.json").write_text(
        json.dumps(
            {
                "k": result.k,
                "labels": [int(x) for x in result.labels],
                "names": names,
                "sizes": sizes,
                "problem_ids": [r.group() for r in train],
            },
            indent=1,
        )
    )
    plot = None
    if c.plot:
        try:
            plot = plot_clusters(emb, result.labels, names, sdir / "clusters.png", ctx.cfg.run.seed)
        except ImportError as exc:  # matplotlib / scikit-learn are the optional `plots` extra
            print(f"[trainer] cluster plot skipped: {exc}", file=sys.stderr)
    return {
        "k": result.k,
        "k_criterion": "fixed" if c.k else "max mean silhouette (cosine) over K in [k_min, k_max]",
        "silhouette": {str(k): round(v, 4) for k, v in result.silhouette.items()},
        "mean_cosine_distance": round(result.cost, 4),
        "sizes": sizes,
        "names": names,
        "encoder": {"name": encoder.name, "dim": int(emb.shape[1])},
        "plot": plot,
    }
