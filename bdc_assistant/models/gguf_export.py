"""Write an HF Llama / Gemma-3 / Qwen2 state dict to an F32 GGUF that llama.cpp loads with the *same* weights.

Why this exists: parity between the torch and llama.cpp backends (and the DisenLoRA adapter parity tests)
needs one set of weights in both formats. We only handle the architectures the app uses, and we do
the same tensor transformations as llama.cpp's ``convert_hf_to_gguf.py``:

* ``llama``: the q/k projection rows are permuted (``LlamaModel.permute``) because llama.cpp's NORM rope
  rotates interleaved pairs while HF rotates halves;
* ``gemma3``: no permutation (NEOX rope), but every RMSNorm weight is stored as ``1 + w`` because HF's
  Gemma norm multiplies by ``(1 + w)`` and llama.cpp's by ``w``. Embedding scaling (√n_embd) is done by
  both runtimes; llama.cpp derives the attention scale as 1/√head_dim, so ``query_pre_attn_scalar`` must
  equal ``head_dim`` (checked here rather than silently producing a different model);
* ``qwen2``: no permutation (``Qwen2Model.modify_tensors`` passes q/k through: NEOX rope), norms as they
  are, q/k/v biases as ``attn_{q,k,v}.bias``; tied embeddings simply omit ``output.weight``.

The tokenizer is passed in by the caller: a minimal SentencePiece-style ("llama") vocab, or a byte-level
BPE ("gpt2", pre-tokenizer "qwen2") vocab as in the real Qwen2 GGUFs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import ModelError

Arch = Literal["llama", "gemma3", "qwen2"]

# HF per-layer module suffix -> GGUF per-block tensor name (both archs share the projections).
_LAYER_NAMES_COMMON: dict[str, str] = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}
_LAYER_NAMES: dict[str, dict[str, str]] = {
    "llama": {**_LAYER_NAMES_COMMON, "post_attention_layernorm.weight": "ffn_norm.weight"},
    "qwen2": {
        **_LAYER_NAMES_COMMON,
        "post_attention_layernorm.weight": "ffn_norm.weight",
        "self_attn.q_proj.bias": "attn_q.bias",
        "self_attn.k_proj.bias": "attn_k.bias",
        "self_attn.v_proj.bias": "attn_v.bias",
    },
    "gemma3": {
        **_LAYER_NAMES_COMMON,
        "self_attn.q_norm.weight": "attn_q_norm.weight",
        "self_attn.k_norm.weight": "attn_k_norm.weight",
        # In Gemma the "post_attention_layernorm" really is after attention; the pre-FFN norm is separate.
        "post_attention_layernorm.weight": "post_attention_norm.weight",
        "pre_feedforward_layernorm.weight": "ffn_norm.weight",
        "post_feedforward_layernorm.weight": "post_ffw_norm.weight",
    },
}
_GLOBAL_NAMES: dict[str, str] = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}

# llama.cpp token types (gguf.TokenType values).
TOKEN_NORMAL, TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_BYTE = 1, 2, 3, 6


@dataclass(frozen=True)
class SpmVocab:
    """A SentencePiece-style vocab for the GGUF header: pieces, scores, llama.cpp token types, special ids."""

    pieces: tuple[str, ...]
    scores: tuple[float, ...]
    types: tuple[int, ...]
    bos_id: int = 1
    eos_id: int = 2
    unk_id: int = 0
    pad_id: int = 0
    add_bos: bool = True
    add_space_prefix: bool = True  # SentencePiece's dummy "▁" prefix (Llama: yes; Gemma: no)

    def __len__(self) -> int:
        return len(self.pieces)


@dataclass(frozen=True)
class BpeVocab:
    """A byte-level BPE vocab (GPT-2 byte alphabet, ranked merges) for the GGUF header, as Qwen2 ships it."""

    pieces: tuple[str, ...]
    types: tuple[int, ...]
    merges: tuple[str, ...]  # "a b", best first
    bos_id: int
    eos_id: int
    pad_id: int
    pre: str = "qwen2"
    add_bos: bool = False

    def __len__(self) -> int:
        return len(self.pieces)


def llama_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's ``LlamaModel.permute``: HF half-rotation rows -> GGUF interleaved-pair rows."""
    rows = w.shape[0]
    return w.reshape(n_head, 2, rows // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape).copy()


def gguf_tensor_name(arch: Arch, hf_name: str) -> str | None:
    """Map an HF parameter name to its GGUF tensor name; ``None`` for tensors llama.cpp does not use."""
    if hf_name in _GLOBAL_NAMES:
        return _GLOBAL_NAMES[hf_name]
    prefix = "model.layers."
    if not hf_name.startswith(prefix):
        return None
    layer, _, rest = hf_name[len(prefix) :].partition(".")
    mapped = _LAYER_NAMES[arch].get(rest)
    return f"blk.{int(layer)}.{mapped}" if mapped else None


def convert_tensors(
    arch: Arch, state: Mapping[str, np.ndarray], config: Any, *, permute_qk: bool = True
) -> dict[str, np.ndarray]:
    """HF tensors -> GGUF tensors (f32, llama.cpp conventions). ``permute_qk=False`` is a negative control."""
    out: dict[str, np.ndarray] = {}
    tied = bool(getattr(config, "tie_word_embeddings", False))
    for hf_name, value in state.items():
        name = gguf_tensor_name(arch, hf_name)
        if name is None:
            if hf_name.endswith("rotary_emb.inv_freq"):
                continue
            raise ModelError(f"Cannot map tensor {hf_name!r} of a {arch} model to GGUF.")
        if name == "output.weight" and tied:
            continue  # llama.cpp falls back to token_embd when output is absent
        arr = np.ascontiguousarray(np.asarray(value, dtype=np.float32))
        if arch == "llama" and permute_qk:
            if name.endswith("attn_q.weight"):
                arr = llama_permute(arr, config.num_attention_heads)
            elif name.endswith("attn_k.weight"):
                arr = llama_permute(arr, config.num_key_value_heads)
        if arch == "gemma3" and name.endswith("norm.weight"):
            arr = arr + np.float32(1.0)
        out[name] = arr
    return out


def _rope_theta(config: Any, layer_type: str | None = None) -> float:
    params = getattr(config, "rope_parameters", None) or {}
    if layer_type and isinstance(params.get(layer_type), dict):
        return float(params[layer_type]["rope_theta"])
    if "rope_theta" in params:
        return float(params["rope_theta"])
    return float(getattr(config, "rope_theta", 10000.0))


def write_gguf(
    arch: Arch,
    state: Mapping[str, np.ndarray],
    config: Any,
    vocab: SpmVocab | BpeVocab,
    path: Path,
    *,
    name: str = "tiny",
    permute_qk: bool = True,
) -> Path:
    """Write ``state`` (an HF Llama/Gemma-3/Qwen2 causal LM) as an F32 GGUF at ``path``."""
    import gguf

    head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads)
    if arch == "gemma3":
        scalar = getattr(config, "query_pre_attn_scalar", head_dim)
        if scalar != head_dim:
            raise ModelError(
                f"llama.cpp scales Gemma-3 attention by 1/sqrt(head_dim={head_dim}), "
                f"but this config has query_pre_attn_scalar={scalar}."
            )
        if getattr(config, "attn_logit_softcapping", None):
            raise ModelError("llama.cpp's gemma3 graph has no attention logit softcapping; set it to None.")
    if len(vocab) != config.vocab_size:
        raise ModelError(f"The vocab has {len(vocab)} pieces but the model expects {config.vocab_size}.")

    tensors = convert_tensors(arch, state, config, permute_qk=permute_qk)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name(name)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_context_length(int(config.max_position_embeddings))
    writer.add_embedding_length(int(config.hidden_size))
    writer.add_block_count(int(config.num_hidden_layers))
    writer.add_feed_forward_length(int(config.intermediate_size))
    writer.add_head_count(int(config.num_attention_heads))
    writer.add_head_count_kv(int(config.num_key_value_heads))
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_vocab_size(int(config.vocab_size))
    if arch in ("llama", "qwen2"):
        writer.add_rope_dimension_count(head_dim)
        writer.add_rope_freq_base(_rope_theta(config))
    else:
        layer_types = list(getattr(config, "layer_types", None) or [])
        writer.add_rope_freq_base(_rope_theta(config, "full_attention"))
        if config.sliding_window and "sliding_attention" in layer_types:
            writer.add_sliding_window(int(config.sliding_window))
            # llama.cpp reads a per-layer bool array (true = sliding) when present, so any HF layout maps.
            writer.add_sliding_window_pattern([t == "sliding_attention" for t in layer_types])
            writer.add_rope_freq_base_swa(_rope_theta(config, "sliding_attention"))
        if getattr(config, "final_logit_softcapping", None):
            writer.add_final_logit_softcapping(float(config.final_logit_softcapping))

    if isinstance(vocab, BpeVocab):
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre(vocab.pre)
        writer.add_token_list(list(vocab.pieces))
        writer.add_token_types(list(vocab.types))
        writer.add_token_merges(list(vocab.merges))
    else:
        writer.add_tokenizer_model("llama")
        writer.add_tokenizer_pre("default")
        writer.add_token_list(list(vocab.pieces))
        writer.add_token_scores(list(vocab.scores))
        writer.add_token_types(list(vocab.types))
        writer.add_unk_token_id(vocab.unk_id)
        writer.add_add_space_prefix(vocab.add_space_prefix)
    writer.add_bos_token_id(vocab.bos_id)
    writer.add_eos_token_id(vocab.eos_id)
    writer.add_pad_token_id(vocab.pad_id)
    writer.add_add_bos_token(vocab.add_bos)
    writer.add_add_eos_token(False)

    for tname, arr in tensors.items():
        writer.add_tensor(tname, arr)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def byte_fallback_vocab(extra_pieces: Sequence[str], *, add_space_prefix: bool = True) -> SpmVocab:
    """``<unk> <s> </s>``, the 256 ``<0xXX>`` byte tokens, then ``extra_pieces`` as normal tokens."""
    pieces = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + list(extra_pieces)
    if len(set(pieces)) != len(pieces):
        raise ModelError("The vocab has duplicate pieces.")
    types = (
        [TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_CONTROL]
        + [TOKEN_BYTE] * 256
        + [TOKEN_NORMAL] * len(extra_pieces)
    )
    scores = [0.0] * (3 + 256) + [-float(i) for i in range(len(extra_pieces))]
    return SpmVocab(
        pieces=tuple(pieces), scores=tuple(scores), types=tuple(types), add_space_prefix=add_space_prefix
    )


def byte_level_vocab(merges: Sequence[tuple[str, str]], specials: Sequence[str]) -> BpeVocab:
    """The 256 byte tokens (GPT-2's byte → printable-character map), one token per merge, then ``specials``.

    The first special is BOS/PAD, the last EOS (Qwen2: ``<|endoftext|>`` … ``<|im_end|>``).
    """
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    table = bytes_to_unicode()
    pieces = [table[b] for b in range(256)] + [a + b for a, b in merges] + list(specials)
    if len(set(pieces)) != len(pieces):
        raise ModelError("The vocab has duplicate pieces.")
    types = [TOKEN_NORMAL] * (256 + len(merges)) + [TOKEN_CONTROL] * len(specials)
    first = 256 + len(merges)
    return BpeVocab(
        pieces=tuple(pieces),
        types=tuple(types),
        merges=tuple(f"{a} {b}" for a, b in merges),
        bos_id=first,
        eos_id=len(pieces) - 1,
        pad_id=first,
    )
