"""The input-aware hypernetwork f (paper eq. 14): G_i = f(e_i, [cos(e_i, μ_1..K)]).

Shape: ``forward(e [B, d], cos [B, K]) -> g [B, L, K·r]``, expert-major inside a layer (entries
k·r … k·r+r−1 belong to expert k), matching the row order of ``A_cat``.

Architecture: x = [e ; cos] → Linear(d+K, hidden) → SiLU → Linear(hidden, hidden) → SiLU →
Linear(hidden, L·K·r) → normalisation. SiLU (not erf-GELU) so the numpy forward is exact with numpy only.

Output normalisation (the paper leaves it open); ``normalization`` in the manifest picks one:

- ``"sigmoid"`` (default): g = σ(z) ∈ (0, 1), independent per (layer, expert, rank). Each rank row of an
  expert can be switched off or kept at most at its trained strength, so a customized adapter never
  exceeds the sum of its experts — the bounded, "rank-wise weights over experts" the paper describes.
  Initialised with zero output weights and bias 0 → g = 0.5 everywhere (a uniform half-mix).
- ``"softmax"``: softmax over the K experts for every (layer, rank) index, times K — a convex
  mixture per rank slot that sums to K (uniform = every expert at 1). Useful when experts should compete.
- ``"none"``: raw linear output (for experiments; unbounded).

``hypernet_numpy(state, e, cos)`` runs the same forward in float32 numpy from the state dict, so the
llama.cpp path needs no torch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

NORMALIZATIONS = ("sigmoid", "softmax", "none")
DEFAULT_HIDDEN = 256


def _normalize_np(z: np.ndarray, normalization: str, n_experts: int, rank: int) -> np.ndarray:
    if normalization == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    if normalization == "softmax":
        b, n_layers, _ = z.shape
        zz = z.reshape(b, n_layers, n_experts, rank)
        zz = zz - zz.max(axis=2, keepdims=True)
        ex = np.exp(zz)
        return (n_experts * ex / ex.sum(axis=2, keepdims=True)).reshape(b, n_layers, n_experts * rank)
    if normalization == "none":
        return z
    raise ValueError(f"unknown normalization {normalization!r}; choose one of {NORMALIZATIONS}")


def build_hypernet(
    embed_dim: int,
    n_clusters: int,
    n_layers: int,
    K: int,
    r: int,
    hidden: int = DEFAULT_HIDDEN,
    normalization: str = "sigmoid",
    seed: int | None = None,
) -> Any:
    """Build the torch HyperNetwork (imported lazily: the app's CLI must not pull torch at import)."""
    import torch
    from torch import nn

    if normalization not in NORMALIZATIONS:
        raise ValueError(f"unknown normalization {normalization!r}; choose one of {NORMALIZATIONS}")

    class HyperNetwork(nn.Module):
        """f(e, cos) → g [B, L, K·r]; see the module docstring for the normalisation choices."""

        def __init__(self) -> None:
            super().__init__()
            self.embed_dim, self.n_clusters = embed_dim, n_clusters
            self.n_layers, self.n_experts, self.rank = n_layers, K, r
            self.normalization = normalization
            self.fc1 = nn.Linear(embed_dim + n_clusters, hidden)
            self.fc2 = nn.Linear(hidden, hidden)
            self.out = nn.Linear(hidden, n_layers * K * r)
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)
            # makes the state dict self-describing: hypernet_numpy(state, e, cos) needs nothing else
            dims = [n_layers, K, r, NORMALIZATIONS.index(normalization)]
            self.register_buffer("dims", torch.tensor(dims, dtype=torch.int64))

        def forward(self, e: torch.Tensor, cos: torch.Tensor) -> torch.Tensor:
            x = torch.cat([e, cos], dim=-1)
            h = torch.nn.functional.silu(self.fc1(x))
            h = torch.nn.functional.silu(self.fc2(h))
            z = self.out(h).view(-1, self.n_layers, self.n_experts * self.rank)
            if self.normalization == "sigmoid":
                return torch.sigmoid(z)
            if self.normalization == "softmax":
                zz = z.view(-1, self.n_layers, self.n_experts, self.rank)
                return (self.n_experts * torch.softmax(zz, dim=2)).view_as(z)
            return z

        def config(self) -> dict[str, Any]:
            return {
                "embed_dim": embed_dim,
                "n_clusters": n_clusters,
                "n_layers": n_layers,
                "K": K,
                "r": r,
                "hidden": hidden,
                "normalization": normalization,
                "activation": "silu",
            }

    if seed is not None:
        gen_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        try:
            return HyperNetwork()
        finally:
            torch.random.set_rng_state(gen_state)
    return HyperNetwork()


def hypernet_from_state(state: dict[str, Any], config: dict[str, Any]) -> Any:
    """Rebuild the torch module from a bundle's state dict and manifest ``hypernet`` section."""
    import torch

    net = build_hypernet(
        int(config["embed_dim"]),
        int(config["n_clusters"]),
        int(config["n_layers"]),
        int(config["K"]),
        int(config["r"]),
        hidden=int(config["hidden"]),
        normalization=str(config["normalization"]),
    )
    tensors = {k: torch.as_tensor(np.asarray(v)) for k, v in state.items()}
    tensors.setdefault("dims", net.dims.clone())  # bundles written before the buffer existed
    net.load_state_dict({k: v.to(net.state_dict()[k].dtype) for k, v in tensors.items()})
    return net


def _silu(x: np.ndarray) -> np.ndarray:
    return x / (1.0 + np.exp(-x))


def hypernet_numpy(
    state: dict[str, np.ndarray],
    e: np.ndarray,
    cos: np.ndarray,
    *,
    n_layers: int | None = None,
    K: int | None = None,
    r: int | None = None,
    normalization: str | None = None,
) -> np.ndarray:
    """The same forward as the torch module, in float32 numpy: e [B, d], cos [B, K] → g [B, L, K·r].

    Shapes and normalisation come from the state's ``dims`` buffer unless given explicitly.
    """
    if n_layers is None or K is None or r is None or normalization is None:
        if "dims" not in state:
            raise ValueError("this hypernetwork state has no 'dims'; pass n_layers, K, r and normalization")
        dims = [int(x) for x in np.asarray(state["dims"]).reshape(-1)]
        n_layers = dims[0] if n_layers is None else n_layers
        K = dims[1] if K is None else K
        r = dims[2] if r is None else r
        normalization = NORMALIZATIONS[dims[3]] if normalization is None else normalization
    x = np.concatenate([np.asarray(e, np.float32), np.asarray(cos, np.float32)], axis=-1)
    h = _silu(x @ state["fc1.weight"].T + state["fc1.bias"])
    h = _silu(h @ state["fc2.weight"].T + state["fc2.bias"])
    z = (h @ state["out.weight"].T + state["out.bias"]).reshape(x.shape[0], n_layers, K * r)
    return _normalize_np(z, normalization, K, r).astype(np.float32)


def state_to_numpy(module: Any) -> dict[str, np.ndarray]:
    """A torch module's state dict as contiguous float32 numpy arrays (what the bundle stores)."""
    out = {}
    for k, v in module.state_dict().items():
        t = v.detach().to("cpu")
        out[k] = (t.float() if t.is_floating_point() else t).contiguous().numpy()
    return out
