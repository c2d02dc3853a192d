"""The mixture of experts of one answer, drawn as text: bars of the mean gate per expert and a
per-layer heat map of the rank-wise gates (rows = layers, columns = expert × rank), with the nearest
clusters named. Pure functions of :class:`Gates`, so snapshots and tests need no model.
"""

from __future__ import annotations

from rich.text import Text

from ..types import Gates

_BLOCKS = " ▁▂▃▄▅▆▇█"
_HEAT = ["#1e1e3f", "#2b3a7a", "#2f6db0", "#2aa3a3", "#56c46a", "#c9d94a", "#f2a93b", "#f05d3b"]


def expert_names(gates: Gates) -> list[str]:
    names = list(gates.cluster_names)
    return [names[k] if k < len(names) and names[k] else f"expert {k}" for k in range(gates.n_experts)]


def nearest_clusters(gates: Gates, top: int = 3) -> list[tuple[str, float]]:
    """The clusters most similar to the query (cosine to centroids), best first."""
    names = expert_names(gates)
    sims = list(gates.cluster_similarity)
    pairs = [(names[k] if k < len(names) else f"cluster {k}", s) for k, s in enumerate(sims)]
    return sorted(pairs, key=lambda p: -p[1])[:top]


def bars(gates: Gates, width: int = 24, name_width: int | None = None) -> Text:
    """One bar per expert, scaled to the largest absolute mean so small mixtures stay visible."""
    means = gates.expert_means()
    pad = name_width or max((len(n) for n in expert_names(gates)), default=6)
    names = [n if len(n) <= pad else n[: pad - 1] + "…" for n in expert_names(gates)]
    scale = max((abs(m) for m in means), default=0.0) or 1.0
    out = Text()
    for k, (name, mean) in enumerate(zip(names, means, strict=True)):
        full = abs(mean) / scale * width
        n_full = int(full)
        frac = full - n_full
        bar = "█" * n_full + (_BLOCKS[int(frac * 8)] if n_full < width and frac > 0 else "")
        out.append(f"{name:<{pad}} ", style="bold")
        out.append(f"{bar:<{width}}", style="#f2a93b" if mean >= 0 else "#6aa0ff")
        out.append(f" {mean:+.3f}")
        if k < len(means) - 1:
            out.append("\n")
    return out


def heatmap(gates: Gates, max_cols: int = 64) -> Text:
    """Layers top to bottom, rank-wise gates left to right (expert blocks separated by a thin gap)."""
    rows = gates.values
    flat = [abs(v) for row in rows for v in row]
    hi = max(flat, default=0.0) or 1.0
    per_expert = gates.rank
    total = max(1, per_expert * gates.n_experts)
    stride = max(1, -(-total // max_cols))  # gates averaged per cell when they do not fit
    cell = max(1, min(3, max_cols // total))  # cells widened (≤ 3 chars) when they fit easily
    out = Text()
    for li, row in enumerate(rows):
        out.append(f"L{li:<3}", style="dim")
        for k in range(gates.n_experts):
            block = row[k * per_expert : (k + 1) * per_expert]
            for j in range(0, len(block), stride):
                chunk = block[j : j + stride]
                v = sum(abs(x) for x in chunk) / len(chunk)
                out.append("█" * cell, style=_HEAT[min(len(_HEAT) - 1, int(v / hi * len(_HEAT)))])
            out.append(" ")
        if li < len(rows) - 1:
            out.append("\n")
    return out


def summary(gates: Gates) -> str:
    near = ", ".join(f"{n} ({s:.2f})" for n, s in nearest_clusters(gates))
    return f"K={gates.n_experts} r={gates.rank} L={len(gates.values)}" + (
        f" · nearest: {near}" if near else ""
    )
