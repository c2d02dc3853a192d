"""TIES and DARE merges of the same K experts, on full ΔW (not on A and B): the math of the ``baselines`` stage.

Why full ΔW: peft's non-SVD ``add_weighted_adapter`` merges A and B separately, which is not a merge of
ΔW (cross terms appear; research/lora.md §1.3). We compute ΔW_k = s_k B_k A_k per (layer, module), merge
with ``peft.utils.merge_utils`` (TIES: trim to ``density``, elect sign by total mass, disjoint mean;
DARE: drop with probability 1−density and rescale, then a weighted sum with weights 1/K — seeded), and
return to LoRA form by truncated SVD at rank K·r (or ``svd_rank``): B = U√S, A = √S Vᵀ, α = rank so
s = 1. The relative Frobenius error of that last step is recorded per method.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from bdc_assistant.disen import modules as mods


def read_adapter(
    adapter_dir: Path,
) -> tuple[dict[tuple[int, str], tuple[np.ndarray, np.ndarray]], float, dict]:
    """{(layer, module): (A, B)}, scale s, adapter config — from a standard peft adapter directory."""
    from bdc_assistant.disen.compose import expert_scale
    from bdc_assistant.disen.safetensors_io import read_safetensors

    cfg = json.loads((adapter_dir / "adapter_config.json").read_text())
    tensors = read_safetensors(adapter_dir / "adapter_model.safetensors")
    a: dict[tuple[int, str], np.ndarray] = {}
    b: dict[tuple[int, str], np.ndarray] = {}
    for key, arr in tensors.items():
        m = mods.PEFT_KEY.search(key)
        if m:
            (a if m.group(4) == "A" else b)[(int(m.group(1)), m.group(3))] = arr
    scale = expert_scale(float(cfg["lora_alpha"]), int(cfg["r"]), bool(cfg.get("use_rslora", False)))
    return {k: (a[k], b[k]) for k in sorted(a)}, scale, cfg


def merge_delta(deltas: list[Any], method: str, density: float, seed: int) -> Any:
    import torch
    from peft.utils import merge_utils

    k = len(deltas)
    if method == "ties":
        return merge_utils.ties(deltas, torch.ones(k), density, majority_sign_method="total")
    if method == "dare":
        gen_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        try:
            return merge_utils.dare_linear(deltas, torch.full((k,), 1.0 / k), density)
        finally:
            torch.random.set_rng_state(gen_state)
    raise ValueError(f"unknown merge method {method!r}")


def expert_deltas(
    experts: list[tuple[dict[tuple[int, str], tuple[np.ndarray, np.ndarray]], float, dict]],
    key: tuple[int, str],
) -> list[Any]:
    """ΔW_k = s_k B_k A_k of every expert at one (layer, module), float64 torch tensors."""
    import torch

    out = []
    for ab, scale, _ in experts:
        a, b = ab[key]
        out.append(scale * torch.from_numpy(b).double() @ torch.from_numpy(a).double())
    return out


def svd_lora(delta: Any, rank: int) -> tuple[Any, Any]:
    """(B [out, rank], A [rank, in]) with B·A the best rank-``rank`` approximation of ``delta`` (float64):
    B = U√S, A = √S Vᵀ, so the adapter's scale is 1. Padded with zero rows/columns when ``delta`` has
    fewer singular values than ``rank``, so the declared rank is kept."""
    import torch

    u, s, vh = torch.linalg.svd(delta.double(), full_matrices=False)
    rr = min(rank, s.numel())
    root = s[:rr].sqrt()
    bmat = u[:, :rr] * root
    amat = root[:, None] * vh[:rr]
    if rr < rank:
        amat = torch.cat([amat, amat.new_zeros(rank - rr, amat.shape[1])])
        bmat = torch.cat([bmat, bmat.new_zeros(bmat.shape[0], rank - rr)], dim=1)
    return bmat, amat


def merge_experts(
    expert_dirs: list[Path], method: str, *, density: float, rank: int, seed: int, out_dir: Path
) -> dict[str, Any]:
    """Merge the experts' full ΔW with ``method`` and write the result as a rank-``rank`` peft adapter."""
    from bdc_assistant.disen.safetensors_io import write_safetensors

    experts = [read_adapter(d) for d in expert_dirs]
    keys = list(experts[0][0])
    if any(list(e[0]) != keys for e in experts):
        raise ValueError("the experts do not target the same (layer, module) set")
    out: dict[str, np.ndarray] = {}
    err_num = err_den = 0.0
    for n, key in enumerate(keys):
        deltas = expert_deltas(experts, key)
        merged = merge_delta([d.float() for d in deltas], method, density, seed + n)
        bmat, amat = svd_lora(merged, rank)
        err_num += float(((bmat @ amat) - merged.double()).pow(2).sum())
        err_den += float(merged.double().pow(2).sum())
        layer, module = key
        out[mods.peft_key(layer, module, "A")] = amat.float().numpy()
        out[mods.peft_key(layer, module, "B")] = bmat.float().numpy()
    out_dir.mkdir(parents=True, exist_ok=True)
    write_safetensors(out_dir / "adapter_model.safetensors", out)
    cfg = dict(experts[0][2])
    cfg.update(r=rank, lora_alpha=float(rank), use_rslora=False, rank_pattern={}, alpha_pattern={})
    (out_dir / "adapter_config.json").write_text(json.dumps(cfg, indent=2, default=list))
    return {
        "method": method,
        "density": density,
        "rank": rank,
        "seed": seed,
        "svd_relative_error": (err_num / err_den) ** 0.5 if err_den > 0 else 0.0,
    }
