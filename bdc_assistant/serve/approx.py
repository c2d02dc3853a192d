"""The arg-max-per-layer approximation of a DisenLoRA mixture, so its cost in accuracy can be measured.

Why it exists: a server that cannot patch a per-request adapter (llama-server, or vLLM without a freshly
materialised LoRA) can still give each request *per-adapter scales*. If every expert is split into one
adapter per layer, a request can switch on, per layer ℓ, the expert k* with the largest gate mass
Σ_j |g[ℓ, k, j]| and give it one scalar scale — the mean of its r rank gates. The exact mixture is
ΔW_ℓ = Σ_k B_k diag(g[ℓ, k]) A_k; the approximation is ΔW_ℓ ≈ c_ℓ · B_k* A_k*. It drops the other experts
and the rank-wise shape of the gates; what that costs in pass@1 is measured by ``bench/approx_loss.py``
(docs/scale-out.md has the numbers), not claimed.

``bdc serve --mixture argmax`` serves with it in process (same adapter path, only g changes), so the same
evaluation can be run against both mixtures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

MIXTURES = ("exact", "argmax")


def argmax_layer_g(g: np.ndarray, n_experts: int, rank: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(g', experts[L], scales[L]): per layer only the expert with the largest gate mass survives, all its
    rank gates set to their mean (a scalar scale); every other gate is 0. g and g' are [L, K·r]."""
    g = np.asarray(g, np.float32)
    layers = g.shape[0]
    if g.shape != (layers, n_experts * rank):
        raise ValueError(f"g has shape {g.shape}, expected [L, {n_experts * rank}]")
    blocks = g.reshape(layers, n_experts, rank)
    experts = np.abs(blocks).sum(axis=2).argmax(axis=1)
    rows = np.arange(layers)
    scales = blocks[rows, experts].mean(axis=1)
    out = np.zeros_like(blocks)
    out[rows, experts, :] = scales[:, None]
    return out.reshape(layers, n_experts * rank), experts, scales


def llama_server_lora(experts: np.ndarray, scales: np.ndarray, n_experts: int) -> list[dict[str, Any]]:
    """The request's ``lora`` field for llama-server when adapter ``id = ℓ·K + k`` is expert k's layer ℓ
    (all other adapters at scale 0, which llama-server applies when they are omitted)."""
    return [
        {"id": int(layer * n_experts + int(k)), "scale": float(s)}
        for layer, (k, s) in enumerate(zip(experts, scales, strict=True))
    ]


@dataclass
class ArgmaxCustomizer:
    """Wraps the solver's customizer: same embedding and hypernetwork, then the arg-max approximation."""

    inner: Any

    @property
    def name(self) -> str:
        return str(getattr(self.inner, "name", "bundle"))

    @property
    def bundle(self) -> Any:
        return self.inner.bundle

    def for_query(self, text: str) -> Any:
        from ..disen.compose import Customization, gates_from_g

        exact = self.inner.for_query(text)
        bundle = exact.bundle
        g, _, _ = argmax_layer_g(exact.g, bundle.K, bundle.r)
        gates = gates_from_g(
            g,
            bundle.K,
            bundle.r,
            np.asarray(exact.gates.cluster_similarity, np.float64),
            exact.gates.cluster_names,
        )
        return Customization(
            bundle=bundle,
            g=g,
            gates=gates,
            embed_ms=exact.embed_ms,
            hypernet_ms=exact.hypernet_ms,
            label=exact.label,
        )


def apply_mixture(solvers: list[Any], mixture: str) -> None:
    """Switch the loaded solvers to ``mixture`` ("exact" leaves them as they are)."""
    if mixture not in MIXTURES:
        raise ValueError(f"unknown mixture {mixture!r}")
    if mixture == "exact":
        return
    for solver in solvers:
        if solver.customizer is not None and not isinstance(solver.customizer, ArgmaxCustomizer):
            solver.customizer = ArgmaxCustomizer(solver.customizer)
