"""Which base model a bundle belongs to, and the shapes of its projections.

A bundle's experts only make sense on the exact base they were trained on. We identify a base by
the sha256 of its GGUF (when there is one) and by a hash of the architecture fields of its HF config.
The same canonical fields are derived from a GGUF header, so a GGUF and the HF directory dequantized
from it hash identically — the llama.cpp and torch backends then accept the same bundles.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import BundleError, ModelError

_ARCH_FROM_MODEL_TYPE = {"gemma3": "gemma3", "gemma3_text": "gemma3", "llama": "llama", "qwen2": "qwen2"}
SUPPORTED = ("gemma3", "llama", "qwen2")


@dataclass(frozen=True)
class ModelShape:
    """Architecture fields that fix every LoRA tensor's shape (and the Llama q/k row permutation)."""

    arch: str
    n_layers: int
    hidden: int
    intermediate: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    vocab_size: int

    def in_out(self, module: str) -> tuple[int, int]:
        """(in_features, out_features) of a target projection."""
        q = self.n_heads * self.head_dim
        kv = self.n_kv_heads * self.head_dim
        table = {
            "q_proj": (self.hidden, q),
            "k_proj": (self.hidden, kv),
            "v_proj": (self.hidden, kv),
            "o_proj": (q, self.hidden),
            "gate_proj": (self.hidden, self.intermediate),
            "up_proj": (self.hidden, self.intermediate),
            "down_proj": (self.intermediate, self.hidden),
        }
        return table[module]

    def canonical(self) -> dict[str, Any]:
        return {
            "arch": self.arch,
            "n_layers": self.n_layers,
            "hidden": self.hidden,
            "intermediate": self.intermediate,
            "n_heads": self.n_heads,
            "n_kv_heads": self.n_kv_heads,
            "head_dim": self.head_dim,
            "vocab_size": self.vocab_size,
        }

    def config_hash(self) -> str:
        """sha256 of the canonical JSON of the architecture fields (the manifest's ``hf_config_hash``)."""
        blob = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()


@dataclass(frozen=True)
class BaseIdentity:
    """What a bundle records about its base, and what a backend reports about the base it loaded."""

    name: str
    arch: str
    gguf_sha256: str | None
    hf_config_hash: str
    n_layers: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "arch": self.arch,
            "gguf_sha256": self.gguf_sha256,
            "hf_config_hash": self.hf_config_hash,
            "n_layers": self.n_layers,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BaseIdentity:
        return cls(
            name=str(data["name"]),
            arch=str(data["arch"]),
            gguf_sha256=data.get("gguf_sha256"),
            hf_config_hash=str(data["hf_config_hash"]),
            n_layers=int(data["n_layers"]),
        )

    def mismatch(self, other: BaseIdentity) -> str | None:
        """Why ``other`` (the loaded base) is not this bundle's base, or None when it is."""
        if self.arch != other.arch:
            return f"architecture {self.arch}, not {other.arch}"
        if self.n_layers != other.n_layers:
            return f"{self.n_layers} layers, not {other.n_layers}"
        if self.gguf_sha256 and other.gguf_sha256 and self.gguf_sha256 != other.gguf_sha256:
            return f"GGUF sha256 {self.gguf_sha256[:12]}…, not {other.gguf_sha256[:12]}…"
        if self.hf_config_hash != other.hf_config_hash:
            return f"config hash {self.hf_config_hash[:12]}…, not {other.hf_config_hash[:12]}…"
        return None


def shape_from_hf_config(config: dict[str, Any]) -> ModelShape:
    """Read the shape fields from an HF ``config.json`` dict (``text_config`` of a multimodal Gemma-3)."""
    if "text_config" in config and isinstance(config["text_config"], dict):
        config = {
            **config["text_config"],
            "model_type": config["text_config"].get("model_type", "gemma3_text"),
        }
    model_type = str(config.get("model_type", ""))
    arch = _ARCH_FROM_MODEL_TYPE.get(model_type)
    if arch is None:
        raise ModelError(
            f"Model type '{model_type}' is not supported by DisenLoRA (supported: {', '.join(SUPPORTED)})."
        )
    n_heads = int(config["num_attention_heads"])
    hidden = int(config["hidden_size"])
    head_dim = config.get("head_dim") or hidden // n_heads
    return ModelShape(
        arch=arch,
        n_layers=int(config["num_hidden_layers"]),
        hidden=hidden,
        intermediate=int(config["intermediate_size"]),
        n_heads=n_heads,
        n_kv_heads=int(config.get("num_key_value_heads") or n_heads),
        head_dim=int(head_dim),
        vocab_size=int(config["vocab_size"]),
    )


def shape_from_hf_dir(hf_dir: Path) -> ModelShape:
    path = Path(hf_dir) / "config.json"
    try:
        return shape_from_hf_config(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"Cannot read the model config {path}: {exc}.") from exc


def shape_from_gguf(path: Path) -> ModelShape:
    """Read the shape fields from a GGUF header and tensor shapes (no weights are dequantized)."""
    from gguf import GGUFReader

    try:
        reader = GGUFReader(str(path), "r")
    except (OSError, ValueError) as exc:
        raise ModelError(f"Cannot read the GGUF file {path}: {exc}.") from exc
    arch_field = reader.fields.get("general.architecture")
    arch = _field_str(arch_field) if arch_field is not None else ""
    if arch not in SUPPORTED:
        raise ModelError(
            f"GGUF architecture '{arch}' is not supported by DisenLoRA (supported: {', '.join(SUPPORTED)})."
        )
    shapes = {t.name: [int(x) for x in t.shape] for t in reader.tensors}

    def ne(name: str) -> list[int]:
        if name not in shapes:
            raise ModelError(f"The GGUF file {path} has no tensor {name}.")
        return shapes[name]

    n_layers = int(_field_scalar(reader.fields[f"{arch}.block_count"]))
    n_heads = int(_field_scalar(reader.fields[f"{arch}.attention.head_count"]))
    kv_field = reader.fields.get(f"{arch}.attention.head_count_kv")
    n_kv = int(_field_scalar(kv_field)) if kv_field is not None else n_heads
    hidden, q_out = ne("blk.0.attn_q.weight")[:2]
    intermediate = ne("blk.0.ffn_up.weight")[1]
    vocab = ne("token_embd.weight")[1]
    return ModelShape(
        arch=arch,
        n_layers=n_layers,
        hidden=hidden,
        intermediate=intermediate,
        n_heads=n_heads,
        n_kv_heads=n_kv,
        head_dim=q_out // n_heads,
        vocab_size=vocab,
    )


def shape_from_llama_metadata(meta: dict[str, str], n_vocab: int) -> ModelShape | None:
    """The same fields from a loaded ``llama_cpp.Llama``'s metadata strings (None when incomplete)."""
    arch = meta.get("general.architecture", "")
    try:
        hidden = int(meta[f"{arch}.embedding_length"])
        n_heads = int(meta[f"{arch}.attention.head_count"])
        head_dim = int(meta.get(f"{arch}.attention.key_length") or hidden // n_heads)
        return ModelShape(
            arch=arch,
            n_layers=int(meta[f"{arch}.block_count"]),
            hidden=hidden,
            intermediate=int(meta[f"{arch}.feed_forward_length"]),
            n_heads=n_heads,
            n_kv_heads=int(meta.get(f"{arch}.attention.head_count_kv") or n_heads),
            head_dim=head_dim,
            vocab_size=int(n_vocab),
        )
    except (KeyError, ValueError):
        return None


def _field_scalar(field: Any) -> Any:
    return field.parts[field.data[0]][0]


def _field_str(field: Any) -> str:
    return bytes(field.parts[field.data[0]]).decode("utf-8")


def identity_for(shape: ModelShape, *, name: str, gguf_sha256: str | None) -> BaseIdentity:
    return BaseIdentity(
        name=name,
        arch=shape.arch,
        gguf_sha256=gguf_sha256,
        hf_config_hash=shape.config_hash(),
        n_layers=shape.n_layers,
    )


def identity_of_gguf(path: Path, *, name: str | None = None) -> tuple[BaseIdentity, ModelShape]:
    """Identity (with the file's sha256) and shape of a base GGUF."""
    from ..models.embedded import cached_sha256

    shape = shape_from_gguf(path)
    return identity_for(shape, name=name or Path(path).name, gguf_sha256=cached_sha256(Path(path))), shape


def identity_of_hf_dir(
    hf_dir: Path,
    *,
    name: str | None = None,
    gguf_sha256: str | None = None,
) -> tuple[BaseIdentity, ModelShape]:
    shape = shape_from_hf_dir(hf_dir)
    return identity_for(shape, name=name or Path(hf_dir).name, gguf_sha256=gguf_sha256), shape


def mismatch_sentence(bundle_base: BaseIdentity, loaded: BaseIdentity, bundle_path: Path) -> str | None:
    """One sentence naming both bases when the bundle at ``bundle_path`` cannot customize ``loaded``."""
    why = bundle_base.mismatch(loaded)
    if why is None:
        return None
    return (
        f"The solver bundle {bundle_path} was made for base '{bundle_base.name}' ({why}); "
        f"it cannot customize '{loaded.name}'."
    )


def require_same_base(bundle_base: BaseIdentity, loaded: BaseIdentity, bundle_path: Path) -> None:
    why = mismatch_sentence(bundle_base, loaded, bundle_path)
    if why is not None:
        raise BundleError(why)
