"""Names of the projections DisenLoRA targets, in HF (peft) form and in GGUF form.

One table so that the bundle reader, the torch slot and the GGUF writer agree on what "layer ℓ,
module m" means. The order of ``TARGET_MODULES`` is the canonical iteration order everywhere.
"""

from __future__ import annotations

import re

TARGET_MODULES: tuple[str, ...] = (
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
)

# HF module name → (parent block, GGUF tensor stem)
_MODULE_INFO: dict[str, tuple[str, str]] = {
    "q_proj": ("self_attn", "attn_q"),
    "k_proj": ("self_attn", "attn_k"),
    "v_proj": ("self_attn", "attn_v"),
    "o_proj": ("self_attn", "attn_output"),
    "gate_proj": ("mlp", "ffn_gate"),
    "up_proj": ("mlp", "ffn_up"),
    "down_proj": ("mlp", "ffn_down"),
}

SUPPORTED_ARCHS: tuple[str, ...] = ("gemma3", "llama", "qwen2")
# Archs whose HF→GGUF converter permutes q/k rows (llama.cpp NORM rope on interleaved pairs); gemma3 and
# qwen2 use NEOX rope (rotate halves, like HF), so convert_hf_to_gguf leaves their q/k rows alone.
QK_PERMUTED_ARCHS: tuple[str, ...] = ("llama",)

# peft key: base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight (language_model. for multimodal)
PEFT_KEY = re.compile(
    r"(?:^|\.)layers\.(\d+)\.(self_attn|mlp)\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
    r"\.lora_([AB])(?:\.default)?\.weight$"
)
# HF module path inside a transformers model: model.layers.3.mlp.up_proj
HF_MODULE = re.compile(
    r"(?:^|\.)layers\.(\d+)\.(self_attn|mlp)\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)$"
)


def parent_of(module: str) -> str:
    return _MODULE_INFO[module][0]


def gguf_stem(module: str) -> str:
    return _MODULE_INFO[module][1]


def gguf_weight_name(layer: int, module: str) -> str:
    """The base tensor llama.cpp applies the adapter to, e.g. ``blk.3.attn_q.weight``."""
    return f"blk.{layer}.{gguf_stem(module)}.weight"


def peft_key(layer: int, module: str, which: str) -> str:
    """Standard peft state-dict key for a causal LM (``which`` is "A" or "B")."""
    return f"base_model.model.model.layers.{layer}.{parent_of(module)}.{module}.lora_{which}.weight"


def check_targets(targets: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Validate and return targets in canonical order (unknown names are a ValueError for the caller)."""
    unknown = [t for t in targets if t not in _MODULE_INFO]
    if unknown:
        raise ValueError(f"unsupported target modules {unknown}; supported: {list(TARGET_MODULES)}")
    return tuple(m for m in TARGET_MODULES if m in set(targets))
