"""Is f input-aware? Routing accuracy, gate spread and "% of oracle" for a bundle on labelled problems.

The paper's claim is that f customizes per input. A trained f that gives every problem the same gates is a
fixed weighted sum of the experts — a static merge under another name — and the evaluation table alone
cannot tell (the shipped CPU bundle's f was exactly that: its mean gates per cluster were identical). So
the trainer measures it, on problems whose cluster is known:

* **own cluster** of a problem: its embedding's nearest centroid (the cluster stage's L2-normalised
  centroids; for validation trajectories the same ``<problem, thought, solution>`` text the cluster stage
  embedded, for benchmark problems their statement);
* **routing accuracy**: how often argmax_k of the problem's per-expert gate mean (g averaged over layers and
  the expert's r rank slots) is its own cluster. ``relative_accuracy`` does the same after subtracting
  each expert's mean over problems — it credits an f that prefers "more expert 1 than usual" for cluster 1
  even when expert 0 wins everywhere in absolute terms;
* **gate spread**: ``gate_std`` = mean over experts of the std across problems of that expert's gate
  mean; ``gate_range`` = the largest max − min across problems of one expert's gate mean. Both are 0 for
  an input-invariant f; below :data:`INVARIANT_SPREAD` the report says ``input_invariant``. Across
  clusters: ``cluster_gap`` = mean over experts of the max − min over clusters of the cluster's mean gate;
* **% of oracle**: DisenLoRA's pass@1 over the pass@1 of answering every problem with its own cluster's
  expert (the per-cluster SFT rows of the table), when those rows were evaluated.

The metric functions are pure numpy (testable on any gates); :func:`bundle_routing` runs a bundle's own
numpy hypernetwork, i.e. exactly the gates the app would use.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bdc_assistant.evaluation import metrics

if TYPE_CHECKING:
    from bdc_assistant.disen.bundle import Bundle

    from .runner import Context

# Gates live in (0, 1) (sigmoid) or (0, K) (softmax): a std of 1e-3 across problems changes no expert's share
# of ΔW by more than 0.1 % — the app would answer every problem with the same adapter.
INVARIANT_SPREAD = 1e-3


@dataclass(frozen=True)
class RoutingReport:
    """Input-awareness of one bundle's gates on ``n`` labelled problems (see the module docstring)."""

    n: int
    k: int
    accuracy: float
    relative_accuracy: float
    chance: float  # the best an input-invariant router can score: the largest cluster's share
    gate_std: float
    gate_range: float
    cluster_gap: float  # mean over experts of max − min over own clusters of the cluster's mean gate
    mean_gate_by_cluster: tuple[tuple[float, ...], ...]  # [own cluster][expert]; NaN rows for empty clusters
    counts: tuple[int, ...]  # problems per own cluster
    threshold: float = INVARIANT_SPREAD

    @property
    def input_invariant(self) -> bool:
        """The gates do not move across problems (needs two problems to say)."""
        return self.n >= 2 and self.gate_std < self.threshold

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mean_gate_by_cluster"] = [
            [None if np.isnan(x) else round(float(x), 4) for x in row] for row in self.mean_gate_by_cluster
        ]
        for key in ("accuracy", "relative_accuracy", "chance"):
            d[key] = round(float(d[key]), 4)
        for key in ("gate_std", "gate_range", "cluster_gap"):
            d[key] = float(f"{d[key]:.3g}")
        d["input_invariant"] = self.input_invariant
        return d


def normalize_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def nearest_cluster(e: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Own cluster of each embedding: argmax of the cosine to the (normalised) centroids."""
    if len(e) == 0:
        return np.zeros(0, np.int64)
    return np.argmax(normalize_rows(e) @ normalize_rows(centroids).T, axis=1).astype(np.int64)


def expert_gate_means(g: np.ndarray, k: int) -> np.ndarray:
    """g [n, L, K·r] (expert-major inside a layer) → [n, K]: each expert's gate averaged over L and r."""
    g = np.asarray(g, np.float64)
    n, n_layers, width = g.shape
    if width % k:
        raise ValueError(f"gates of width {width} do not split into {k} experts")
    return g.reshape(n, n_layers, k, width // k).mean(axis=(1, 3))


def routing_report(
    means: np.ndarray, labels: np.ndarray, threshold: float = INVARIANT_SPREAD
) -> RoutingReport:
    """The metrics of the module docstring from per-expert gate means [n, K] and own clusters [n]."""
    means = np.asarray(means, np.float64)
    labels = np.asarray(labels, np.int64)
    n, k = means.shape
    if n == 0:
        nan = (float("nan"),) * k
        return RoutingReport(0, k, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, (nan,) * k, (0,) * k, threshold)
    counts = np.bincount(labels, minlength=k)[:k]
    centred = means - means.mean(axis=0, keepdims=True)
    by_cluster = tuple(
        tuple(float(x) for x in means[labels == j].mean(axis=0)) if counts[j] else (float("nan"),) * k
        for j in range(k)
    )
    present = np.array([row for row, c in zip(by_cluster, counts, strict=True) if c])  # [clusters, K]
    return RoutingReport(
        n=n,
        k=k,
        accuracy=float(np.mean(np.argmax(means, axis=1) == labels)),
        relative_accuracy=float(np.mean(np.argmax(centred, axis=1) == labels)),
        chance=float(counts.max() / n),
        gate_std=float(means.std(axis=0).mean()),
        gate_range=float((means.max(axis=0) - means.min(axis=0)).max()),
        cluster_gap=float((present.max(axis=0) - present.min(axis=0)).mean()),
        mean_gate_by_cluster=by_cluster,
        counts=tuple(int(c) for c in counts),
        threshold=threshold,
    )


def bundle_gates(bundle: Bundle, e: np.ndarray) -> np.ndarray:
    """g [n, L, K·r] of a bundle for embeddings e [n, d]: its own numpy hypernetwork, as the app runs it."""
    from bdc_assistant.disen.hypernet import hypernet_numpy

    e = normalize_rows(np.asarray(e, np.float32).reshape(-1, bundle.embed_dim))
    return hypernet_numpy(
        bundle.hypernet_state,
        e,
        e @ bundle.centroids.T,
        n_layers=bundle.n_layers,
        K=bundle.K,
        r=bundle.r,
        normalization=str(bundle.manifest["hypernet"].get("normalization", "sigmoid")),
    )


def bundle_routing(bundle: Bundle, e: np.ndarray, labels: np.ndarray) -> RoutingReport:
    return routing_report(expert_gate_means(bundle_gates(bundle, e), bundle.K), labels)


# ---- % of oracle -----------------------------------------------------------------------------------------


def oracle_fraction(
    results: dict[str, dict[str, list[dict[str, Any]]]],
    own_cluster: dict[tuple[str, str], int],
    cluster_rows: list[str],
    rows: tuple[str, ...] = ("DisenLoRA", "TWIN"),
) -> dict[str, Any] | None:
    """pass@1 of each row in ``rows`` as a % of the oracle that answers every problem with its own
    cluster's expert (``cluster_rows[j]`` = the table label of cluster j's SFT row).

    ``results`` is the evaluation's {row: {group: [records]}}; ``own_cluster`` maps (group, problem id) to
    the problem's cluster. Problems some needed row did not score are left out (and counted). None when
    the per-cluster rows were not evaluated."""
    if not cluster_rows or any(r not in results for r in cluster_rows):
        return None

    def outcomes(row: str) -> dict[tuple[str, str], float]:
        """Per (group, id) the share of its scored answers that pass (one answer: 1.0 or 0.0)."""
        passes: dict[tuple[str, str], list[bool]] = {}
        for group, recs in results.get(row, {}).items():
            for rec in recs:
                ok = metrics.record_passed(rec)
                if ok is not None:
                    passes.setdefault((group, str(rec["id"])), []).append(ok)
        return {key: sum(v) / len(v) for key, v in passes.items()}

    per_cluster = [outcomes(r) for r in cluster_rows]
    present = [r for r in rows if r in results]
    per_row = {r: outcomes(r) for r in present}
    keys = [
        key
        for key, j in own_cluster.items()
        if 0 <= j < len(cluster_rows) and key in per_cluster[j] and all(key in per_row[r] for r in present)
    ]
    oracle = [per_cluster[own_cluster[key]][key] for key in keys]
    oracle_p1 = 100.0 * sum(oracle) / len(oracle) if oracle else 0.0
    out: dict[str, Any] = {
        "problems": len(keys),
        "left_out": len(own_cluster) - len(keys),
        "oracle_pass_at_1": round(oracle_p1, 2),
        "own_cluster_counts": [sum(1 for k in keys if own_cluster[k] == j) for j in range(len(cluster_rows))],
    }
    for r in present:
        p1 = 100.0 * sum(per_row[r][key] for key in keys) / len(keys) if keys else 0.0
        out[r] = {
            "pass_at_1": round(p1, 2),
            "pct_of_oracle": round(100.0 * p1 / oracle_p1, 1) if oracle_p1 > 0 else None,
        }
    return out


# ---- the report section ----------------------------------------------------------------------------------


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x:.1f} % of oracle"


def markdown(routing: dict[str, Any]) -> str:
    """The "Input-awareness" section of report.md from :func:`evaluation_routing`'s dict."""
    lines = ["### Input-awareness", ""]
    sets = [
        (f"{routing.get('problems', 0)} {routing.get('split', '')} trajectories", routing.get("bundles", {}))
    ]
    evaluated = routing.get("evaluated")
    if evaluated:
        sets.append((f"the {evaluated['problems']} evaluated problems", evaluated["bundles"]))
    for where, reports in sets:
        lines += [
            f"On {where}, own cluster = nearest centroid.",
            "",
            "| Bundle | routing acc | relative acc | chance | gate std | gate max−min | cluster gap | input-invariant |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, rep in reports.items():
            lines.append(
                f"| {name} | {rep['accuracy']:.2f} | {rep['relative_accuracy']:.2f} | {rep['chance']:.2f} | "
                f"{rep['gate_std']:.3g} | {rep['gate_range']:.3g} | {rep['cluster_gap']:.3g} | "
                f"{'**yes**' if rep['input_invariant'] else 'no'} |"
            )
        lines.append("")
    lines.pop()
    oracle = routing.get("oracle")
    if oracle:
        parts = [
            f"{r} {v['pass_at_1']:.2f} ({_pct(v['pct_of_oracle'])})"
            for r, v in oracle.items()
            if isinstance(v, dict)
        ]
        lines += [
            "",
            f"% of oracle (own-cluster expert per problem, pass@1 {oracle['oracle_pass_at_1']:.2f} on "
            f"{oracle['problems']} problems): " + ", ".join(parts) + ".",
        ]
    lines += [
        "",
        "routing acc = share of problems whose largest mean expert gate is their own cluster's expert; relative "
        "acc = the same after removing each expert's mean gate; gate std = mean over experts of the std of "
        f"its mean gate across problems (input-invariant below {INVARIANT_SPREAD:g}); cluster gap = mean over "
        "experts of the max − min over clusters of the cluster's mean gate.",
    ]
    return "\n".join(lines) + "\n"


# ---- the trainer side: which problems, which labels -------------------------------------------------------


def labelled_problems(ctx: Context, encoder: Any) -> tuple[str, np.ndarray, np.ndarray]:
    """(split, problem embeddings [n, d], own clusters [n]): the validation trajectories, labelled by the
    cluster stage's embedding, when they cover two clusters or more; else those plus the training ones (with
    their assignments) — a set from one cluster cannot tell a confident router from an input-invariant one."""
    from . import artifacts as art

    cents = art.centroids(ctx)
    val = art.records(ctx, "val")
    fields = ctx.cfg.cluster.embed_fields
    e_val = art.embed(encoder, [r.problem for r in val], "embed problems") if val else None
    full = (
        art.embed(encoder, ["\n".join(getattr(r, f) for f in fields) for r in val], "embed") if val else None
    )
    y_val = nearest_cluster(full, cents) if full is not None else np.zeros(0, np.int64)
    if e_val is not None and len(set(y_val.tolist())) >= 2:
        return "validation", e_val, y_val
    train = art.records(ctx, "train")
    e_tr = art.embed(encoder, [r.problem for r in train], "embed problems")
    y_tr = np.asarray(art.assignments(ctx)["labels"], np.int64)
    if e_val is None:
        return "training", e_tr, y_tr
    return "validation+training", np.concatenate([e_val, e_tr]), np.concatenate([y_val, y_tr])


def evaluation_routing(
    ctx: Context,
    bundles: dict[str, Path],
    *,
    results: dict[str, dict[str, list[dict[str, Any]]]] | None = None,
    problems: list[tuple[tuple[str, str], str]] | None = None,
) -> dict[str, Any]:
    """The routing section of the evaluation report: every bundle in ``bundles`` on the labelled problems,
    plus % of oracle when ``results`` has the per-cluster rows (``problems``: ((group, id), the text the
    solver embeds) of every evaluated problem)."""
    from bdc_assistant.disen.bundle import load_bundle

    from . import artifacts as art

    encoder = art.encoder(ctx)
    split, e, labels = labelled_problems(ctx, encoder)
    out: dict[str, Any] = {"split": split, "problems": len(labels), "bundles": {}}
    for name, path in bundles.items():
        if Path(path).exists():
            out["bundles"][name] = bundle_routing(load_bundle(Path(path)), e, labels).as_dict()
    names = art.assignments(ctx)["names"]
    cluster_rows = [f"SFT on cluster {j} ({n})" for j, n in enumerate(names)]
    if problems:
        # the evaluated problems themselves (the validation sets the table is on), as the app embeds them
        keys, texts = [k for k, _ in problems], [t for _, t in problems]
        e_eval = art.embed(encoder, texts, "embed problems")
        own = nearest_cluster(e_eval, art.centroids(ctx))
        out["evaluated"] = {
            "problems": len(texts),
            "bundles": {
                name: bundle_routing(load_bundle(Path(path)), e_eval, own).as_dict()
                for name, path in bundles.items()
                if Path(path).exists()
            },
        }
        if results is not None and all(r in results for r in cluster_rows):
            out["oracle"] = oracle_fraction(results, dict(zip(keys, own.tolist(), strict=True)), cluster_rows)
    return out


def check_input_aware(report: dict[str, Any] | None, *, refuse: bool, what: str) -> str | None:
    """Loud warning (or, with ``refuse``, a BundleError) when ``report`` says the gates ignore the input.
    Returns the warning text, None when the gates vary (or nothing was measured)."""
    if not report or not report.get("input_invariant"):
        return None
    msg = (
        f"{what}: the hypernetwork's gates do not depend on the input (gate std {report['gate_std']:.3g} "
        f"< {INVARIANT_SPREAD:g} across {report['n']} problems, routing accuracy {report['accuracy']:.2f} vs "
        f"chance {report['chance']:.2f}); it is a fixed mix of the experts, not a per-input customization."
    )
    if refuse:
        from bdc_assistant.errors import BundleError

        raise BundleError(f"Refusing to export: {msg} (export.refuse_input_invariant is set).")
    print(f"[trainer] WARNING: {msg}", file=sys.stderr)
    return msg
