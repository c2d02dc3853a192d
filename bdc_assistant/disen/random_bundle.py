"""Random solver bundles for tests and benchmarks: real format, random weights.

``make_random_bundle(base, out_dir, K=3, r=4, seed=0, scale=...)`` reads the base's projection shapes
from an HF directory (``config.json``) or from a GGUF header (no dequantization), draws K peft-format
experts, K unit centroids and a hypernetwork whose output varies with the query, and saves them
through :func:`save_bundle` — so everything downstream is exercised on the production code path.

``scale`` sets the size of each expert's ΔW relative to a unit-variance input: B and A are drawn so
that ‖s_k B_k A_k x‖ ≈ scale·‖x‖ for a typical x, which lets a test pick an adapter effect that is
clearly visible in the logits (≥ 0.3) without wrecking the model.

``spread_gates=True`` sizes the hypernetwork for a real encoder's L2-normalised embeddings (each
coordinate ~1/√d): the default sizing assumes unit-variance coordinates, so with a real encoder every gate
sits at σ(≈0) = 0.5 ± 0.02 (measured) and a test of the gate order (expert-major vs rank-major) could not
fail. With it, gates spread over (0, 1) and differ between queries.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from . import modules as mods
from .bundle import save_bundle
from .compose import expert_scale
from .hypernet import NORMALIZATIONS
from .identity import ModelShape, identity_for, shape_from_gguf, shape_from_hf_dir


def base_shape_and_identity(
    base: Path | ModelShape, *, name: str | None = None
) -> tuple[ModelShape, dict[str, Any]]:
    """Shape and manifest ``base`` entry for an HF dir, a GGUF file or an explicit ModelShape."""
    if isinstance(base, ModelShape):
        shape, sha = base, None
        label = name or f"random-{base.arch}"
    else:
        base = Path(base)
        if base.is_dir():
            shape, sha = shape_from_hf_dir(base), None
        else:
            from ..models.embedded import cached_sha256

            shape, sha = shape_from_gguf(base), cached_sha256(base)
        label = name or base.name
    return shape, identity_for(shape, name=label, gguf_sha256=sha).as_dict()


def make_random_bundle(
    base: Path | ModelShape,
    out_dir: Path,
    K: int = 3,
    r: int = 4,
    seed: int = 0,
    scale: float = 0.05,
    *,
    embed_dim: int = 384,
    lora_alpha: float | None = None,
    use_rslora: bool = False,
    targets: tuple[str, ...] = mods.TARGET_MODULES,
    hidden: int = 64,
    normalization: str = "sigmoid",
    spread_gates: bool = False,
    gguf_sha256: str | None = None,
    name: str | None = None,
    overwrite: bool = True,
) -> Path:
    """Write a random but valid bundle for ``base`` into ``out_dir`` and return the path."""
    shape, base_entry = base_shape_and_identity(base, name=name)
    if gguf_sha256 is not None:
        base_entry["gguf_sha256"] = gguf_sha256
    rng = np.random.default_rng(seed)
    alpha = float(lora_alpha if lora_alpha is not None else 2 * r)
    s = expert_scale(alpha, r, use_rslora)
    experts: list[dict[str, np.ndarray]] = []
    for _k in range(K):
        sd: dict[str, np.ndarray] = {}
        for layer in range(shape.n_layers):
            for module in targets:
                n_in, n_out = shape.in_out(module)
                # x ~ N(0, I): ‖A x‖ ≈ √r with std_a = 1/√in, ‖s B A x‖ ≈ s·std_b·√(r·out) =: scale·√in
                std_a = 1.0 / math.sqrt(n_in)
                std_b = scale * math.sqrt(n_in) / (s * math.sqrt(r * n_out))
                sd[mods.peft_key(layer, module, "A")] = (rng.standard_normal((r, n_in)) * std_a).astype(
                    np.float32
                )
                sd[mods.peft_key(layer, module, "B")] = (rng.standard_normal((n_out, r)) * std_b).astype(
                    np.float32
                )
        experts.append(sd)
    centroids = rng.standard_normal((K, embed_dim)).astype(np.float32)
    d_in = embed_dim + K
    n_out = shape.n_layers * K * r
    # Unit-norm input (spread_gates): std 3 per weight gives O(3) pre-activations; else unit-variance input.
    fc1_std = 3.0 if spread_gates else 2.0 / math.sqrt(d_in)
    state = {
        "fc1.weight": (rng.standard_normal((hidden, d_in)) * fc1_std).astype(np.float32),
        "fc1.bias": np.zeros(hidden, np.float32),
        "fc2.weight": (rng.standard_normal((hidden, hidden)) / math.sqrt(hidden)).astype(np.float32),
        "fc2.bias": np.zeros(hidden, np.float32),
        "out.weight": (rng.standard_normal((n_out, hidden)) * 3.0 / math.sqrt(hidden)).astype(np.float32),
        "out.bias": np.zeros(n_out, np.float32),
        "dims": np.array([shape.n_layers, K, r, NORMALIZATIONS.index(normalization)], np.int64),
    }
    manifest = {
        "base": base_entry,
        "encoder": {"name": "all-MiniLM-L6-v2", "dim": embed_dim},
        "K": K,
        "r": r,
        "target_modules": list(targets),
        "use_rslora": use_rslora,
        "lora_alpha": alpha,
        "hypernet": {
            "hidden": hidden,
            "normalization": normalization,
            "activation": "silu",
            "embed_dim": embed_dim,
            "n_clusters": K,
            "n_layers": shape.n_layers,
            "K": K,
            "r": r,
        },
        "clusters": {"names": [f"random-{k}" for k in range(K)]},
        "provenance": {"how": "make_random_bundle", "seed": seed, "scale": scale},
        "metrics": {},
    }
    return save_bundle(
        out_dir,
        manifest=manifest,
        experts=experts,
        centroids=centroids,
        hypernet_state=state,
        overwrite=overwrite,
    )
