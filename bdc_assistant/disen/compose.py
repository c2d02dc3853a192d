"""The customization math shared by both backends (research/lora.md §7, DESIGN §4).

Built once per bundle, for every (layer ℓ, module m):

    A_cat = [s_1·A_1; …; s_K·A_K]  ∈ R^{K·r × in}   (expert-major rows, scales folded in)
    B_cat = [B_1 … B_K]            ∈ R^{out × K·r}

with s_k = α_k/r_k, or α_k/√r_k for an rsLoRA expert. We build these ourselves rather than with peft's
``add_weighted_adapter("cat")``, which over-scales rsLoRA experts by √(K·r) in peft 0.21.2.

Per query, g ∈ R^{L × K·r} (the paper's G_i, one K×r block per decoding layer, eq. 14) gives

    ΔW[ℓ, m] = B_cat · diag(g[ℓ]) · A_cat = Σ_k s_k B_k diag(g[ℓ, k·r:(k+1)·r]) A_k     (eq. 15–17)

A :class:`Customization` is that g plus the bundle it belongs to; both backends consume exactly it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..types import Gates

if TYPE_CHECKING:
    from .bundle import Bundle


@dataclass(frozen=True)
class ExpertWeights:
    """One peft LoRA expert: per (layer, module) its A [r, in] and B [out, r], and its scale s_k."""

    A: dict[tuple[int, str], np.ndarray]
    B: dict[tuple[int, str], np.ndarray]
    scale: float
    rank: int


def expert_scale(lora_alpha: float, r: int, use_rslora: bool) -> float:
    """peft's scaling: α/r, or α/√r for rsLoRA."""
    return float(lora_alpha) / (float(np.sqrt(r)) if use_rslora else float(r))


@dataclass(frozen=True)
class CatLora:
    """A_cat / B_cat for every targeted (layer, module), float32, built once per bundle."""

    A: dict[tuple[int, str], np.ndarray]
    B: dict[tuple[int, str], np.ndarray]
    n_layers: int
    n_experts: int
    rank: int
    targets: tuple[str, ...]

    def layer_modules(self) -> Iterator[tuple[int, str]]:
        for layer in range(self.n_layers):
            for module in self.targets:
                yield layer, module

    def delta(self, g: np.ndarray, layer: int, module: str) -> np.ndarray:
        """ΔW[ℓ, m] = B_cat · diag(g[ℓ]) · A_cat, float32."""
        key = (layer, module)
        return self.B[key] @ (np.asarray(g[layer], np.float32)[:, None] * self.A[key])

    def a_star(self, g: np.ndarray, layer: int, module: str) -> np.ndarray:
        """A* = g[ℓ] ⊙_rows A_cat (eq. 15): what the llama.cpp adapter holds as ``lora_a``."""
        return np.asarray(g[layer], np.float32)[:, None] * self.A[(layer, module)]


def build_cat(experts: list[ExpertWeights], targets: tuple[str, ...], n_layers: int) -> CatLora:
    """Concatenate K experts into one rank-K·r LoRA with each expert's scale folded into its A rows."""
    if not experts:
        raise ValueError("at least one expert is needed")
    rank = experts[0].rank
    a_cat: dict[tuple[int, str], np.ndarray] = {}
    b_cat: dict[tuple[int, str], np.ndarray] = {}
    for layer in range(n_layers):
        for module in targets:
            key = (layer, module)
            a_cat[key] = np.ascontiguousarray(
                np.concatenate(
                    [np.asarray(ex.A[key], np.float64) * ex.scale for ex in experts], axis=0
                ).astype(np.float32)
            )
            b_cat[key] = np.ascontiguousarray(
                np.concatenate([np.asarray(ex.B[key], np.float32) for ex in experts], axis=1)
            )
    return CatLora(a_cat, b_cat, n_layers, len(experts), rank, targets)


def reference_delta(experts: list[ExpertWeights], g: np.ndarray, layer: int, module: str) -> np.ndarray:
    """The float64 ground truth Σ_k s_k B_k diag(g_k) A_k, straight from the raw expert tensors."""
    key = (layer, module)
    out: np.ndarray | None = None
    for k, ex in enumerate(experts):
        gk = np.asarray(g[layer][k * ex.rank : (k + 1) * ex.rank], np.float64)
        term = ex.scale * (
            np.asarray(ex.B[key], np.float64) @ (gk[:, None] * np.asarray(ex.A[key], np.float64))
        )
        out = term if out is None else out + term
    assert out is not None
    return out


def gates_from_g(
    g: np.ndarray, n_experts: int, rank: int, cos: np.ndarray | None = None, names: tuple[str, ...] = ()
) -> Gates:
    """Wrap g as the frozen, loggable :class:`Gates` value."""
    values = tuple(tuple(float(x) for x in row) for row in np.asarray(g, np.float64))
    sims = tuple(float(x) for x in cos) if cos is not None else ()
    return Gates(values=values, n_experts=n_experts, rank=rank, cluster_similarity=sims, cluster_names=names)


@dataclass(frozen=True, eq=False)
class Customization:
    """One query's customization: g [L, K·r] for ``bundle`` (plus how long computing it took)."""

    bundle: Bundle
    g: np.ndarray
    gates: Gates
    embed_ms: float = 0.0
    hypernet_ms: float = 0.0
    label: str = ""

    def __post_init__(self) -> None:
        g = np.ascontiguousarray(self.g, dtype=np.float32)
        expected = (self.bundle.n_layers, self.bundle.K * self.bundle.r)
        if g.shape != expected:
            raise ValueError(f"g has shape {g.shape}, expected {expected}")
        g.setflags(write=False)
        object.__setattr__(self, "g", g)

    @classmethod
    def from_g(cls, bundle: Bundle, g: np.ndarray, *, label: str = "") -> Customization:
        """A customization from explicit gates (tests, benchmarks, the trainer's evaluation)."""
        g = np.asarray(g, np.float32)
        return cls(
            bundle=bundle,
            g=g,
            gates=gates_from_g(g, bundle.K, bundle.r, names=bundle.cluster_names),
            label=label,
        )
