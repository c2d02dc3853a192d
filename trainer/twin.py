"""The TWIN row: Twin-Merging (Lu et al., NeurIPS 2024, "Dynamic Integration of Modular Expertise in Model
Merging") of the same K experts, shipped as a bundle the app answers with per query.

Twin-Merging splits the experts' knowledge in two:

* **shared** S: a static merge of the K deltas ΔW_k = s_k B_k A_k — their mean (task arithmetic with
  λ = 1/K, the default: rank ≤ K·r, so exact at the TIES row's rank K·r) or the TIES merge (then Ŝ is exactly
  the TIES row's adapter, but a trimmed merge is high-rank and its truncation error lands in every E_k: on
  the smoke run's experts the per-expert reconstruction error at exclusive rank r was 0.64 with TIES vs 0.41
  with the mean); returned to LoRA form by truncated SVD at ``shared_rank``: Ŝ;
* **exclusive** E_k = ΔW_k − Ŝ: what expert k holds beyond the stored shared part (taken against Ŝ, not S,
  so the shared truncation is not lost twice), compressed by truncated SVD to ``exclusive_rank``: Ê_k.

At inference a router maps the problem embedding to softmax weights w(e) over the K exclusive parts and
the model runs with ΔW(e) = Ŝ + Σ_k w_k(e) Ê_k. At full rank Ŝ + Ê_k = ΔW_k exactly (one-hot w gives
expert k back); the per-module truncation errors are in the stage metrics.

**How it runs through the app (the mapping to gates).** A bundle's per-query ΔW is
Σ_k B_k diag(g_k) s_k A_k, with g = f(e, cos) and f's ``"softmax"`` normalisation giving g_k = K·softmax(z)_k
for every (layer, rank slot). TWIN is written as a K-expert bundle whose expert k is the rank-(R_s + R_e)
LoRA [B_Ŝ B_Êk]·[A_Ŝ; A_Êk] = Ŝ + Ê_k with scale s_k = 1/K (``lora_alpha`` = rank/K), and whose
"hypernetwork" is the router with its K output logits repeated for every (layer, rank slot). Then
g_k = K·w_k and ΔW = Σ_k K·w_k·(Ŝ + Ê_k)/K = Ŝ + Σ_k w_k Ê_k (because Σ w_k = 1): Twin-Merging exactly,
through the same per-query merge (torch) and adapter patch (llama.cpp) as DisenLoRA, with no runtime
change. The price: Ŝ is stored K times and the per-query cat rank is K·(R_s + R_e).

Routers (``router``): ``"trained"`` — Twin-Merging's choice, an MLP trained with cross-entropy on the
cluster labels of the training problems (the app's problem embedding + its cosines to the centroids as
input, f's own architecture with a K-logit head); ``"cosine"`` — train-free softmax(cos(e, μ_k)/τ), written
into the same MLP exactly (see :func:`cosine_router_state`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bdc_assistant.disen import modules as mods

from .merges import expert_deltas, merge_delta, read_adapter, svd_lora

SHARED_METHODS = ("ties", "mean")
ROUTERS = ("trained", "cosine")


@dataclass(frozen=True)
class RouterConfig:
    """How the TWIN router is fitted. Fixed here, not in the trainer config: the router is a tiny
    full-batch classifier over a few hundred embeddings, so these are not knobs worth a config field."""

    hidden: int = 64
    steps: int = 300
    lr: float = 1e-2
    weight_decay: float = 1e-4
    temperature: float = 0.05  # the cosine router's τ


# ---- the decomposition -----------------------------------------------------------------------------------


def shared_delta(deltas: list[Any], method: str, density: float, seed: int) -> Any:
    """The static merge S of one module's ΔW_k (float64): TIES (as the TIES row) or the mean."""
    if method == "ties":
        return merge_delta([d.float() for d in deltas], "ties", density, seed).double()
    if method == "mean":
        return sum(d.double() for d in deltas) / len(deltas)
    raise ValueError(f"unknown TWIN shared method {method!r}; choose one of {SHARED_METHODS}")


def twin_decompose(
    deltas: list[Any], *, shared: str, density: float, shared_rank: int, exclusive_rank: int, seed: int
) -> tuple[tuple[Any, Any], list[tuple[Any, Any]], dict[str, float]]:
    """One module: ((B_Ŝ, A_Ŝ), [(B_Êk, A_Êk)], squared-error sums) — everything float64.

    The sums let a caller aggregate relative Frobenius errors over modules: ``shared_err``/``shared_norm``
    (Ŝ vs S), ``excl_err``/``excl_norm`` (Ê vs E, all k) and ``delta_norm`` (Σ‖ΔW_k‖², for the
    reconstruction error ‖Ŝ + Ê_k − ΔW_k‖ = ‖Ê_k − E_k‖)."""
    s_full = shared_delta(deltas, shared, density, seed)
    b_s, a_s = svd_lora(s_full, shared_rank)
    s_hat = b_s @ a_s
    stats = {
        "shared_err": float((s_hat - s_full).pow(2).sum()),
        "shared_norm": float(s_full.pow(2).sum()),
        "excl_err": 0.0,
        "excl_norm": 0.0,
        "delta_norm": 0.0,
    }
    exclusive = []
    for d in deltas:
        e_full = d.double() - s_hat
        b_e, a_e = svd_lora(e_full, exclusive_rank)
        stats["excl_err"] += float((b_e @ a_e - e_full).pow(2).sum())
        stats["excl_norm"] += float(e_full.pow(2).sum())
        stats["delta_norm"] += float(d.double().pow(2).sum())
        exclusive.append((b_e, a_e))
    return (b_s, a_s), exclusive, stats


def _rel(num: float, den: float) -> float:
    return (num / den) ** 0.5 if den > 0 else 0.0


def build_twin_experts(
    expert_dirs: list[Path],
    *,
    shared: str,
    density: float,
    shared_rank: int,
    exclusive_rank: int,
    seed: int,
    out_dir: Path,
) -> tuple[list[Path], dict[str, Any]]:
    """Write K peft adapters ``out_dir/expert_<k>`` = (Ŝ + Ê_k) at rank R_s + R_e with scale 1/K (see the
    module docstring for why 1/K), and return them with the decomposition's error metrics."""
    import torch

    from bdc_assistant.disen.safetensors_io import write_safetensors

    experts = [read_adapter(d) for d in expert_dirs]
    k = len(experts)
    keys = list(experts[0][0])
    if any(list(e[0]) != keys for e in experts):
        raise ValueError("the experts do not target the same (layer, module) set")
    rank = shared_rank + exclusive_rank
    tensors: list[dict[str, np.ndarray]] = [{} for _ in range(k)]
    totals = {"shared_err": 0.0, "shared_norm": 0.0, "excl_err": 0.0, "excl_norm": 0.0, "delta_norm": 0.0}
    for n, key in enumerate(keys):
        (b_s, a_s), exclusive, stats = twin_decompose(
            expert_deltas(experts, key),
            shared=shared,
            density=density,
            shared_rank=shared_rank,
            exclusive_rank=exclusive_rank,
            seed=seed + n,  # the TIES row's seed per module: Ŝ is that row's adapter
        )
        for name, value in stats.items():
            totals[name] += value
        layer, module = key
        for j, (b_e, a_e) in enumerate(exclusive):
            tensors[j][mods.peft_key(layer, module, "A")] = torch.cat([a_s, a_e]).float().numpy()
            tensors[j][mods.peft_key(layer, module, "B")] = torch.cat([b_s, b_e], dim=1).float().numpy()
    dirs = []
    for j in range(k):
        edir = out_dir / f"expert_{j}"
        edir.mkdir(parents=True, exist_ok=True)
        write_safetensors(edir / "adapter_model.safetensors", tensors[j])
        cfg = dict(experts[0][2])
        cfg.update(r=rank, lora_alpha=rank / k, use_rslora=False, rank_pattern={}, alpha_pattern={})
        (edir / "adapter_config.json").write_text(json.dumps(cfg, indent=2, default=list))
        dirs.append(edir)
    metrics = {
        "shared": shared,
        "density": density if shared == "ties" else None,
        "shared_rank": shared_rank,
        "exclusive_rank": exclusive_rank,
        "seed": seed,
        "shared_svd_relative_error": _rel(totals["shared_err"], totals["shared_norm"]),
        "exclusive_svd_relative_error": _rel(totals["excl_err"], totals["excl_norm"]),
        "expert_reconstruction_relative_error": _rel(totals["excl_err"], totals["delta_norm"]),
    }
    return dirs, metrics


# ---- the router ------------------------------------------------------------------------------------------


def train_router(
    e: np.ndarray, centroids: np.ndarray, labels: np.ndarray, cfg: RouterConfig, seed: int
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Fit a K-way router on (problem embedding, cluster label) pairs; returns its state in f's layout
    (a :func:`build_hypernet` with L = 1, r = 1, ``normalization="none"``: ``out`` gives the K logits) and
    its training accuracy."""
    import torch

    from bdc_assistant.disen.hypernet import build_hypernet, state_to_numpy

    k, d = centroids.shape
    x = torch.from_numpy(np.asarray(e, np.float32))
    cos = x @ torch.from_numpy(np.asarray(centroids, np.float32)).T
    y = torch.from_numpy(np.asarray(labels, np.int64))
    net = build_hypernet(d, k, 1, k, 1, hidden=cfg.hidden, normalization="none", seed=seed)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    loss = torch.zeros(())
    for _ in range(cfg.steps):
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(net(x, cos)[:, 0, :], y)
        loss.backward()
        opt.step()
    with torch.no_grad():
        acc = float((net(x, cos)[:, 0, :].argmax(dim=1) == y).float().mean()) if len(y) else 0.0
    return state_to_numpy(net), {
        "router_train_accuracy": round(acc, 4),
        "router_train_loss": float(loss.detach()),
    }


def cosine_router_state(embed_dim: int, k: int, temperature: float) -> dict[str, np.ndarray]:
    """softmax(cos(e, μ)/τ) written into f's MLP exactly: fc1 picks cos_j/τ and adds an offset c large
    enough that SiLU(z) = z·σ(z) equals z to float precision (z ≥ c − 1/τ ≥ 40: 1 − σ(40) ≈ 4e-18),
    fc2 is the identity, and ``out`` subtracts c again (softmax ignores a shared shift anyway)."""
    offset = 40.0 + 1.0 / temperature
    fc1 = np.zeros((k, embed_dim + k), np.float32)
    fc1[np.arange(k), embed_dim + np.arange(k)] = 1.0 / temperature
    return {
        "fc1.weight": fc1,
        "fc1.bias": np.full((k,), offset, np.float32),
        "fc2.weight": np.eye(k, dtype=np.float32),
        "fc2.bias": np.zeros((k,), np.float32),
        "out.weight": np.eye(k, dtype=np.float32),
        "out.bias": np.full((k,), -offset, np.float32),
    }


def router_as_hypernet(router: dict[str, np.ndarray], n_layers: int, rank: int) -> dict[str, np.ndarray]:
    """The router's K logits repeated for every (layer, rank slot), with f's ``"softmax"`` normalisation:
    g[ℓ, k·r + i] = K·softmax(logits)_k — the bundle state the app runs (module docstring)."""
    from bdc_assistant.disen.hypernet import NORMALIZATIONS

    w = np.asarray(router["out.weight"], np.float32)  # [K, hidden]
    b = np.asarray(router["out.bias"], np.float32)  # [K]
    k = w.shape[0]
    out_w = np.broadcast_to(w[None, :, None, :], (n_layers, k, rank, w.shape[1])).reshape(-1, w.shape[1])
    out_b = np.broadcast_to(b[None, :, None], (n_layers, k, rank)).reshape(-1)
    state = {name: np.asarray(router[name], np.float32) for name in ("fc1.weight", "fc1.bias", "fc2.weight")}
    state["fc2.bias"] = np.asarray(router["fc2.bias"], np.float32)
    state["out.weight"] = np.ascontiguousarray(out_w)
    state["out.bias"] = np.ascontiguousarray(out_b)
    state["dims"] = np.array([n_layers, k, rank, NORMALIZATIONS.index("softmax")], np.int64)
    return state


def router_weights(router: dict[str, np.ndarray], e: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """w(e) [n, K]: the router's softmax weights over the exclusive parts (numpy, for reports and tests)."""
    from bdc_assistant.disen.hypernet import hypernet_numpy

    e = np.asarray(e, np.float32).reshape(-1, centroids.shape[1])
    k = centroids.shape[0]
    z = hypernet_numpy(router, e, e @ centroids.T, n_layers=1, K=k, r=1, normalization="none")[:, 0, :]
    z = z - z.max(axis=1, keepdims=True)
    ez = np.exp(z)
    return ez / ez.sum(axis=1, keepdims=True)


def save_twin_bundle(
    out_dir: Path,
    expert_dirs: list[Path],
    router: dict[str, np.ndarray],
    *,
    router_kind: str,
    base: dict[str, Any],
    encoder: dict[str, Any],
    centroids: np.ndarray,
    names: list[str],
    provenance: dict[str, Any],
    metrics: dict[str, Any],
) -> Path:
    """Wrap the K (Ŝ + Ê_k) adapters and the router as a K-expert bundle (the mapping in the docstring)."""
    from bdc_assistant.disen.bundle import save_bundle

    acfg = json.loads((expert_dirs[0] / "adapter_config.json").read_text())
    rank = int(acfg["r"])
    n_layers = int(base["n_layers"])
    cents = np.asarray(centroids, np.float32)
    k, d = cents.shape
    hidden = int(np.asarray(router["fc2.weight"]).shape[0])
    manifest = {
        "base": base,
        "encoder": encoder,
        "K": k,
        "r": rank,
        "target_modules": list(acfg["target_modules"]),
        "use_rslora": False,
        "lora_alpha": rank / k,
        "hypernet": {
            "embed_dim": d,
            "n_clusters": k,
            "n_layers": n_layers,
            "K": k,
            "r": rank,
            "hidden": hidden,
            "normalization": "softmax",
            "activation": "silu",
            "kind": "twin-router",
            "router": router_kind,
        },
        "clusters": {"names": list(names)},
        "provenance": {**provenance, "static": False, "method": "twin"},
        "metrics": {"twin": metrics},
    }
    return save_bundle(
        out_dir,
        manifest=manifest,
        experts=list(expert_dirs),
        centroids=cents,
        hypernet_state=router_as_hypernet(router, n_layers, rank),
        overwrite=True,
    )
