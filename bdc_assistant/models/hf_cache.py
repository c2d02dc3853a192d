"""Dequantize a GGUF base once into a cached HF safetensors dir, so the torch backend can run the same model.

Why: the embedded base ships only as a GGUF. transformers can load a GGUF (``gguf_file=``), but that
dequantizes every tensor (~2 min for gemma-3-270m or Qwen2.5-Coder-0.5B, 2.5 GB of f32) and the result
refuses ``save_pretrained``. We do it
once, clear the GGUF quantizer (``hf_quantizer = None``; drop ``quantization_config``), and save to
``<models_dir>/hf-<sha256[:16]>`` keyed by the GGUF's digest; later loads take seconds.

Two config fields transformers' GGUF mapping does not carry are restored so the torch model computes
what llama.cpp computes from the same file (Qwen2 needs none: measured, same greedy text, argmax agreement
1.0 on the 0.5B): Gemma-3's attention scale (llama.cpp uses 1/√head_dim, i.e.
``query_pre_attn_scalar = head_dim``) and the sliding-window layer pattern / local rope base.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .. import atomic
from ..errors import ModelError
from ..paths import app_paths
from .embedded import cached_sha256
from .resolve import check_gguf

MARKER = "bdc-source.json"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()).rstrip(".") or type(exc).__name__
    return text[:240]


def cache_dir_for(gguf: Path) -> Path:
    return app_paths().models_dir / f"hf-{cached_sha256(gguf)[:16]}"


def is_cached(gguf: Path) -> bool:
    return (cache_dir_for(gguf) / MARKER).is_file()


def _gguf_field(reader: Any, key: str) -> Any:
    field = reader.fields.get(key)
    return None if field is None else field.contents()


def _fix_config(config: Any, gguf: Path) -> Any:
    """Carry the llama.cpp-relevant Gemma-3 fields that transformers' GGUF mapping drops."""
    if getattr(config, "model_type", "") != "gemma3_text":
        return config
    import gguf as gguf_lib

    reader = gguf_lib.GGUFReader(str(gguf))
    n_layers = int(config.num_hidden_layers)
    config.query_pre_attn_scalar = int(config.head_dim)
    window = _gguf_field(reader, "gemma3.attention.sliding_window")
    if window:
        config.sliding_window = int(window)
        pattern = _gguf_field(reader, "gemma3.attention.sliding_window_pattern")
        if isinstance(pattern, list):
            swa = [bool(x) for x in pattern][:n_layers]
        else:
            n = int(pattern) if pattern else 6
            swa = [n == 0 or (i % n) < (n - 1) for i in range(n_layers)]
        config.layer_types = ["sliding_attention" if s else "full_attention" for s in swa]
        base_swa = _gguf_field(reader, "gemma3.rope.freq_base_swa")
        if base_swa and isinstance(getattr(config, "rope_parameters", None), dict):
            params = dict(config.rope_parameters)
            if isinstance(params.get("sliding_attention"), dict):
                params["sliding_attention"] = {**params["sliding_attention"], "rope_theta": float(base_swa)}
                config.rope_parameters = params
    return config


def dequantize_to_hf(gguf: Path, out_dir: Path) -> Path:
    """Load ``gguf`` with transformers (dequantizing to f32) and save model + tokenizer under ``out_dir``."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf = check_gguf(gguf, "base")
    try:
        config = _fix_config(AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name), gguf)
        model: Any = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, config=config, dtype=torch.float32
        )
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    except (ValueError, KeyError, OSError, RuntimeError) as exc:
        raise ModelError(
            f"transformers could not convert {gguf.name} for the torch backend: {_one_line(exc)}."
        ) from exc
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def hf_dir_for_gguf(gguf: Path) -> Path:
    """The cached HF dir for ``gguf``, building it on first use (atomic: a killed build leaves no dir)."""
    gguf = check_gguf(Path(gguf).expanduser(), "base")
    target = cache_dir_for(gguf)
    if (target / MARKER).is_file():
        return target
    # an unmarked leftover from an older layout is replaced
    with atomic.directory(target, replace=True) as tmp:
        dequantize_to_hf(gguf, tmp)
        (tmp / MARKER).write_text(
            json.dumps({"gguf": gguf.name, "sha256": cached_sha256(gguf)}, indent=2) + "\n", encoding="utf-8"
        )
    return target
