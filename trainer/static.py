"""One-expert *static* bundles: how a non-adaptive adapter (SFT-all, one cluster's expert, a TIES or DARE
merge) is shipped in the same bundle format as DisenLoRA, so both app backends run every row of the
evaluation table through the same code path.

The hypernetwork of a static bundle is the bundle's own architecture with ``normalization = "none"``,
all weights zero and the output bias one: g ≡ 1 for every query, so ΔW = s·B·A exactly — the adapter
as trained (or as merged).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def constant_hypernet_state(
    embed_dim: int, n_layers: int, rank: int, hidden: int = 1
) -> dict[str, np.ndarray]:
    z = np.zeros
    return {
        "fc1.weight": z((hidden, embed_dim + 1), np.float32),
        "fc1.bias": z((hidden,), np.float32),
        "fc2.weight": z((hidden, hidden), np.float32),
        "fc2.bias": z((hidden,), np.float32),
        "out.weight": z((n_layers * rank, hidden), np.float32),
        "out.bias": np.ones((n_layers * rank,), np.float32),
    }


def save_static_bundle(
    out_dir: Path,
    adapter_dir: Path,
    *,
    base: dict[str, Any],
    encoder: dict[str, Any],
    centroid: np.ndarray,
    name: str,
    provenance: dict[str, Any],
) -> Path:
    """Wrap one peft adapter directory as a K=1 bundle with constant gates."""
    import json

    from bdc_assistant.disen.bundle import save_bundle

    acfg = json.loads((adapter_dir / "adapter_config.json").read_text())
    rank = int(acfg["r"])
    n_layers = int(base["n_layers"])
    cent = np.asarray(centroid, np.float32).reshape(1, -1)
    manifest = {
        "base": base,
        "encoder": encoder,
        "K": 1,
        "r": rank,
        "target_modules": list(acfg["target_modules"]),
        "use_rslora": bool(acfg.get("use_rslora", False)),
        "lora_alpha": float(acfg["lora_alpha"]),
        "hypernet": {"hidden": 1, "normalization": "none", "kind": "constant-ones"},
        "clusters": {"names": [name]},
        "provenance": {**provenance, "static": True, "method": name},
        "metrics": {},
    }
    state = constant_hypernet_state(cent.shape[1], n_layers, rank)
    return save_bundle(
        out_dir,
        manifest=manifest,
        experts=[adapter_dir],
        centroids=cent,
        hypernet_state=state,
        overwrite=True,
    )
