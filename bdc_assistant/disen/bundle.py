"""The solver bundle: K peft LoRA experts + centroids + hypernetwork + a manifest (the shared contract).

Layout::

    manifest.json
    experts/expert_<k>/adapter_model.safetensors + adapter_config.json    (k = 0..K-1, standard peft)
    centroids.safetensors      (tensor ``centroids`` [K, d], L2-normalised)
    hypernet.safetensors       (the HyperNetwork state dict)
    adapter_template.gguf      (optional llama.cpp template cache, rebuilt if missing; not in ``files``)

Loading checks every listed file's sha256 first (a truncated or edited file is refused before any
parse), then K, r, n_layers, every tensor's shape, and — when the caller says which base it has
loaded — the base identity. Each refusal is one :class:`BundleError` sentence.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, cast

import numpy as np

from .. import atomic
from ..errors import BundleError
from . import modules as mods
from .compose import CatLora, ExpertWeights, build_cat, expert_scale
from .hypernet import NORMALIZATIONS, hypernet_numpy
from .identity import BaseIdentity, require_same_base
from .safetensors_io import read_safetensors, to_numpy, write_safetensors

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
TEMPLATE_NAME = "adapter_template.gguf"
_REQUIRED = (
    "base",
    "encoder",
    "K",
    "r",
    "target_modules",
    "use_rslora",
    "lora_alpha",
    "hypernet",
    "clusters",
)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True, eq=False)
class Bundle:
    """A loaded, validated solver bundle (all tensors as float32 numpy; torch-free)."""

    path: Path
    manifest: dict[str, Any]
    base: BaseIdentity
    experts: list[ExpertWeights]
    centroids: np.ndarray  # [K, d]
    hypernet_state: dict[str, np.ndarray]
    shapes: dict[str, tuple[int, int]] = field(default_factory=dict)  # module → (in, out)

    @property
    def K(self) -> int:
        return int(self.manifest["K"])

    @property
    def r(self) -> int:
        return int(self.manifest["r"])

    @property
    def n_layers(self) -> int:
        return self.base.n_layers

    @property
    def targets(self) -> tuple[str, ...]:
        return mods.check_targets(self.manifest["target_modules"])

    @property
    def cluster_names(self) -> tuple[str, ...]:
        return tuple(str(n) for n in self.manifest["clusters"].get("names", ()))

    @property
    def embed_dim(self) -> int:
        return int(self.centroids.shape[1])

    @property
    def bundle_id(self) -> str:
        """Content id: the hash of the manifest's file digests (names a cached template)."""
        blob = json.dumps(self.manifest.get("files", {}), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    @cached_property
    def cat(self) -> CatLora:
        """A_cat / B_cat, built once per bundle (scales folded, rsLoRA handled)."""
        return build_cat(self.experts, self.targets, self.n_layers)

    def gates_for(self, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(g [L, K·r], cos [K]) for one L2-normalised embedding e [d] (numpy hypernetwork)."""
        e = np.asarray(e, np.float32).reshape(1, -1)
        if e.shape[1] != self.embed_dim:
            raise BundleError(
                f"The encoder gives {e.shape[1]}-dim embeddings but the bundle {self.path} expects {self.embed_dim}."
            )
        cos = e @ self.centroids.T
        cfg = self.manifest["hypernet"]
        g = hypernet_numpy(
            self.hypernet_state,
            e,
            cos,
            n_layers=self.n_layers,
            K=self.K,
            r=self.r,
            normalization=str(cfg.get("normalization", "sigmoid")),
        )
        return g[0], cos[0]


# ---------------------------------------------------------------------------------------------- save


def _expert_config(manifest: dict[str, Any]) -> dict[str, Any]:
    return {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": manifest["base"].get("name", ""),
        "r": int(manifest["r"]),
        "lora_alpha": float(manifest["lora_alpha"]),
        "use_rslora": bool(manifest["use_rslora"]),
        "target_modules": list(manifest["target_modules"]),
        "lora_dropout": 0.0,
        "bias": "none",
        "fan_in_fan_out": False,
        "rank_pattern": {},
        "alpha_pattern": {},
    }


def save_bundle(
    out_dir: Path,
    *,
    manifest: dict[str, Any],
    experts: list[dict[str, Any]] | list[Path],
    centroids: Any,
    hypernet_state: Any,
    overwrite: bool = False,
) -> Path:
    """Write a bundle directory atomically (temp dir + rename) and return its path.

    ``experts``: K peft state dicts (keys like ``…layers.3.self_attn.q_proj.lora_A.weight``; tensors or
    arrays) or K peft adapter directories (copied as-is). ``hypernet_state``: a state dict or the module.
    The manifest gets ``format_version``, ``files`` and ``provenance.created_at`` filled in.
    """
    out_dir = Path(out_dir)
    missing = [k for k in _REQUIRED if k not in manifest]
    if missing:
        raise BundleError(f"The bundle manifest is missing {', '.join(missing)}.")
    if len(experts) != int(manifest["K"]):
        raise BundleError(f"The manifest says K={manifest['K']} but {len(experts)} experts were given.")
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise BundleError(f"The bundle directory {out_dir} already exists and is not empty.")
    with atomic.directory(out_dir, replace=True) as tmp:
        manifest = json.loads(json.dumps(manifest))  # deep copy, JSON-clean
        manifest["format_version"] = FORMAT_VERSION
        manifest["target_modules"] = list(mods.check_targets(manifest["target_modules"]))
        manifest.setdefault("provenance", {}).setdefault(
            "created_at", _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        )
        manifest.setdefault("metrics", {})
        for k, expert in enumerate(experts):
            edir = tmp / "experts" / f"expert_{k}"
            edir.mkdir(parents=True)
            if isinstance(expert, str | os.PathLike):
                src = Path(expert)
                for name in ("adapter_model.safetensors", "adapter_config.json"):
                    if not (src / name).exists():
                        raise BundleError(f"The expert directory {src} has no {name}.")
                shutil.copyfile(src / "adapter_model.safetensors", edir / "adapter_model.safetensors")
                # peft records the trainer's local base path; a bundle is shared, so it names the base instead
                config = json.loads((src / "adapter_config.json").read_text())
                config["base_model_name_or_path"] = manifest["base"].get("name", "")
                (edir / "adapter_config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
            else:
                state = cast(dict[str, Any], expert)
                write_safetensors(
                    edir / "adapter_model.safetensors", {k2: to_numpy(v) for k2, v in state.items()}
                )
                (edir / "adapter_config.json").write_text(json.dumps(_expert_config(manifest), indent=2))
        cents = to_numpy(centroids).astype(np.float32)
        norms = np.linalg.norm(cents, axis=1, keepdims=True)
        if cents.ndim != 2 or np.any(norms == 0):
            raise BundleError("The cluster centroids must be a [K, d] array of non-zero rows.")
        write_safetensors(tmp / "centroids.safetensors", {"centroids": cents / norms})
        state = hypernet_state.state_dict() if hasattr(hypernet_state, "state_dict") else hypernet_state
        write_safetensors(tmp / "hypernet.safetensors", {k: to_numpy(v) for k, v in state.items()})
        files = {}
        for p in sorted(tmp.rglob("*")):
            if p.is_file():
                files[p.relative_to(tmp).as_posix()] = _sha256(p)
        manifest["files"] = files
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return out_dir


# ---------------------------------------------------------------------------------------------- load


def _read_manifest(path: Path) -> dict[str, Any]:
    if not path.is_dir():
        raise BundleError(f"The solver bundle {path} does not exist or is not a directory.")
    mpath = path / MANIFEST
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise BundleError(f"The solver bundle {path} has no {MANIFEST}.") from exc
    except (OSError, ValueError) as exc:
        raise BundleError(f"The manifest {mpath} is not valid JSON.") from exc
    if not isinstance(manifest, dict):
        raise BundleError(f"The manifest {mpath} is not a JSON object.")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise BundleError(f"The solver bundle {path} has format version {version}; this app reads version 1.")
    missing = [k for k in (*_REQUIRED, "files") if k not in manifest]
    if missing:
        raise BundleError(f"The manifest {mpath} is missing {', '.join(missing)}.")
    return manifest


def _check_files(path: Path, manifest: dict[str, Any]) -> None:
    files = manifest["files"]
    if not isinstance(files, dict):
        raise BundleError(f"The manifest of {path} has a malformed 'files' table.")
    K = int(manifest["K"])
    required = ["centroids.safetensors", "hypernet.safetensors"]
    for k in range(K):
        required += [
            f"experts/expert_{k}/adapter_model.safetensors",
            f"experts/expert_{k}/adapter_config.json",
        ]
    for rel in required:
        if rel not in files:
            raise BundleError(f"The solver bundle {path} does not list {rel} (expected for K={K}).")
    for rel, digest in files.items():
        p = path / rel
        if not p.is_file():
            raise BundleError(f"The solver bundle {path} is missing {rel}.")
        if _sha256(p) != digest:
            raise BundleError(f"The bundle file {p} is truncated or modified (sha256 mismatch).")
    expert_dirs = sorted(d.name for d in (path / "experts").iterdir() if d.is_dir())
    if len(expert_dirs) != K:
        raise BundleError(
            f"The solver bundle {path} holds {len(expert_dirs)} experts but its manifest says K={K}."
        )


def _load_expert(
    edir: Path,
    manifest: dict[str, Any],
    n_layers: int,
    targets: tuple[str, ...],
    shapes: dict[str, tuple[int, int]],
) -> ExpertWeights:
    try:
        config = json.loads((edir / "adapter_config.json").read_text(encoding="utf-8"))
    except ValueError as exc:
        raise BundleError(f"The expert config {edir / 'adapter_config.json'} is not valid JSON.") from exc
    r = int(manifest["r"])
    if int(config.get("r", -1)) != r:
        raise BundleError(f"The expert {edir} has rank {config.get('r')} but the bundle says r={r}.")
    if config.get("rank_pattern") or config.get("alpha_pattern"):
        raise BundleError(
            f"The expert {edir} uses rank_pattern/alpha_pattern, which DisenLoRA does not support."
        )
    if config.get("use_dora"):
        raise BundleError(f"The expert {edir} is a DoRA adapter, which DisenLoRA does not support.")
    scale = expert_scale(float(config.get("lora_alpha", r)), r, bool(config.get("use_rslora", False)))
    tensors = read_safetensors(edir / "adapter_model.safetensors", what="expert weights file")
    a: dict[tuple[int, str], np.ndarray] = {}
    b: dict[tuple[int, str], np.ndarray] = {}
    for name, arr in tensors.items():
        m = mods.PEFT_KEY.search(name)
        if m is None:
            continue
        layer, module, which = int(m.group(1)), m.group(3), m.group(4)
        if module not in targets:
            continue
        if layer >= n_layers:
            raise BundleError(
                f"The expert {edir} has weights for layer {layer} but the base has {n_layers} layers."
            )
        (a if which == "A" else b)[(layer, module)] = arr
    for layer in range(n_layers):
        for module in targets:
            key = (layer, module)
            if key not in a or key not in b:
                raise BundleError(f"The expert {edir} has no LoRA weights for layer {layer} {module}.")
            A, B = a[key], b[key]
            if A.ndim != 2 or B.ndim != 2 or A.shape[0] != r or B.shape[1] != r:
                raise BundleError(
                    f"The expert {edir} has {module} of layer {layer} with shapes A{A.shape} B{B.shape}, not rank {r}."
                )
            io = (A.shape[1], B.shape[0])
            if shapes.setdefault(module, io) != io:
                raise BundleError(
                    f"The expert {edir} has {module} of layer {layer} shaped {io}, not {shapes[module]}."
                )
    return ExpertWeights(A=a, B=b, scale=scale, rank=r)


def load_bundle(path: Path, *, expect_base: BaseIdentity | None = None) -> Bundle:
    """Load and validate a bundle; refuse anything inconsistent with one BundleError sentence."""
    path = Path(path).expanduser()
    manifest = _read_manifest(path)
    try:
        base = BaseIdentity.from_dict(manifest["base"])
        K, r = int(manifest["K"]), int(manifest["r"])
        targets = mods.check_targets(manifest["target_modules"])
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(
            f"The manifest of {path} has a malformed base/K/r/target_modules entry: {exc}."
        ) from exc
    if K < 1 or r < 1 or not targets:
        raise BundleError(f"The manifest of {path} needs K ≥ 1, r ≥ 1 and at least one target module.")
    if expect_base is not None:
        require_same_base(base, expect_base, path)
    _check_files(path, manifest)
    shapes: dict[str, tuple[int, int]] = {}
    experts = [
        _load_expert(path / "experts" / f"expert_{k}", manifest, base.n_layers, targets, shapes)
        for k in range(K)
    ]
    centroids = read_safetensors(path / "centroids.safetensors", what="centroids file").get("centroids")
    if centroids is None or centroids.ndim != 2 or centroids.shape[0] != K:
        got = None if centroids is None else centroids.shape
        raise BundleError(f"The centroids of {path} have shape {got}, expected [K={K}, d].")
    enc_dim = manifest["encoder"].get("dim")
    if enc_dim is not None and int(enc_dim) != centroids.shape[1]:
        raise BundleError(
            f"The centroids of {path} are {centroids.shape[1]}-dim but the encoder is {enc_dim}-dim."
        )
    state = read_safetensors(path / "hypernet.safetensors", what="hypernetwork file")
    _check_hypernet(path, manifest, state, centroids.shape[1], base.n_layers, K, r)
    return Bundle(
        path=path,
        manifest=manifest,
        base=base,
        experts=experts,
        centroids=centroids,
        hypernet_state=state,
        shapes=shapes,
    )


def _check_hypernet(
    path: Path, manifest: dict[str, Any], state: dict[str, np.ndarray], d: int, n_layers: int, K: int, r: int
) -> None:
    cfg = manifest["hypernet"]
    norm = cfg.get("normalization", "sigmoid")
    if norm not in NORMALIZATIONS:
        raise BundleError(f"The hypernetwork of {path} uses unknown normalization '{norm}'.")
    need = ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "out.weight", "out.bias")
    absent = [k for k in need if k not in state]
    if absent:
        raise BundleError(f"The hypernetwork of {path} lacks {', '.join(absent)}.")
    if state["fc1.weight"].shape[1] != d + K:
        raise BundleError(
            f"The hypernetwork of {path} takes {state['fc1.weight'].shape[1]} inputs, not d+K = {d}+{K}."
        )
    if state["out.weight"].shape[0] != n_layers * K * r:
        raise BundleError(
            f"The hypernetwork of {path} outputs {state['out.weight'].shape[0]} gates, not L·K·r = {n_layers * K * r}."
        )


def template_path(bundle: Bundle, arch: str) -> Path:
    """Where the llama.cpp adapter template of ``bundle`` is cached: in the bundle if writable, except for a
    bundle shipped as package data (never written at run time: a source checkout would grow an untracked
    26 MB file, an installed package is often read-only), which caches under the app's cache dir."""
    from ..resources import assets_dir

    shipped = bundle.path.resolve().is_relative_to(assets_dir().resolve())
    if not shipped and os.access(bundle.path, os.W_OK):
        return bundle.path / TEMPLATE_NAME
    from ..paths import app_paths

    return app_paths().cache_dir / "adapter_templates" / f"{bundle.bundle_id}-{arch}.gguf"
