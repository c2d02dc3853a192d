"""Tiny random Llama / Gemma-3 / Qwen2 models, written both as an HF dir and as an F32 GGUF with the same weights.

Why: backend parity (torch vs llama.cpp), the DisenLoRA adapter parity tests and the trainer's smoke
config all need a real model that loads in both runtimes in well under a second. It lives in the package
(not under tests/) because the trainer uses it too.

The weights are re-drawn with a seeded generator at a larger scale than HF's default init (std 0.02),
so logits are well separated and greedy decoding does not hinge on float rounding. The Llama/Gemma vocab
is a byte-fallback SentencePiece vocab: 3 specials, 256 byte tokens, ``▁`` and the printable ASCII
characters; the Qwen2 vocab is byte-level BPE like the real Qwen2 GGUFs (256 byte tokens, a few merges,
``<|endoftext|>``/``<|im_start|>``/``<|im_end|>``). The same vocab is saved as an HF ``tokenizer.json``
so both runtimes also tokenize text the same way.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .gguf_export import TOKEN_CONTROL, BpeVocab, SpmVocab, byte_fallback_vocab, byte_level_vocab, write_gguf

TinyArch = Literal["llama", "gemma3", "qwen2"]
TINY_ARCHS: tuple[TinyArch, ...] = ("llama", "gemma3", "qwen2")

_EXTRA_PIECES: tuple[str, ...] = ("▁", *(c for c in string.printable if c.isprintable() and c != " "))


@dataclass(frozen=True)
class TinyModel:
    hf_dir: Path
    gguf_path: Path
    arch: TinyArch
    n_layers: int
    vocab_size: int


# A few merges so the byte-level BPE really merges (indentation, common code bigrams), ranked best first.
_QWEN_MERGES: tuple[tuple[str, str], ...] = (
    ("Ġ", "Ġ"), ("ĠĠ", "ĠĠ"), ("Ġ", "t"), ("h", "e"), ("i", "n"), ("Ġ", "a"), ("e", "r"), ("o", "n"),
    ("Ġt", "he"), ("r", "e"), ("Ġ", "="), ("d", "e"), ("de", "f"), ("Ġ", "r"), ("Ġr", "e"),
)  # fmt: skip
_QWEN_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")


def tiny_vocab(arch: TinyArch = "llama") -> SpmVocab | BpeVocab:
    """As the real GGUFs: Llama's SentencePiece adds a dummy "▁" prefix, Gemma's does not; Qwen2 has a
    byte-level BPE (``gpt2`` model, ``qwen2`` pre-tokenizer, no BOS)."""
    if arch == "qwen2":
        return byte_level_vocab(_QWEN_MERGES, _QWEN_SPECIALS)
    return byte_fallback_vocab(_EXTRA_PIECES, add_space_prefix=arch == "llama")


def _config(arch: TinyArch, vocab: SpmVocab | BpeVocab, n_layers: int) -> Any:
    common: dict[str, Any] = dict(
        vocab_size=len(vocab),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=n_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=512,
        rms_norm_eps=1e-6,
        bos_token_id=vocab.bos_id,
        eos_token_id=vocab.eos_id,
        pad_token_id=vocab.pad_id,
    )
    if arch == "llama":
        from transformers import LlamaConfig

        return LlamaConfig(
            **common,
            tie_word_embeddings=False,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        )
    if arch == "qwen2":
        from transformers import Qwen2Config

        # As Qwen2.5-Coder-0.5B/1.5B: q/k/v biases (always on in HF's Qwen2), tied embeddings, NEOX rope with
        # a large base, no sliding window.
        return Qwen2Config(
            **common,
            tie_word_embeddings=True,
            use_sliding_window=False,
            rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0},
        )
    from transformers import Gemma3TextConfig

    # Alternate sliding/full layers with a short window so both attention kinds and both rope bases are
    # exercised by a 20-40 token parity run.
    layer_types = ["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(n_layers)]
    return Gemma3TextConfig(
        **common,
        tie_word_embeddings=True,
        query_pre_attn_scalar=16,
        sliding_window=8,
        layer_types=layer_types,
        final_logit_softcapping=None,
        attn_logit_softcapping=None,
        rope_parameters={
            "full_attention": {"rope_type": "default", "rope_theta": 1_000_000.0},
            "sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0},
        },
    )


def _randomize(model: Any, arch: TinyArch, seed: int) -> None:
    """Seeded weights with O(1) activations: N(0, 1/fan_in) matrices, N(0,1) embeddings, norms near 1."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in sorted(model.named_parameters()):
            if name.endswith("norm.weight"):
                noise = torch.randn(param.shape, generator=gen) * 0.1
                # The tied lm_head sees small embeddings (below): a 4x final norm restores logit spread.
                boost = 3.0 if arch != "llama" and name == "model.norm.weight" else 0.0
                # Gemma's RMSNorm multiplies by (1 + w): keep the *effective* scale near 1 for all archs.
                param.copy_(noise + boost + (0.0 if arch == "gemma3" else 1.0))
            elif "embed_tokens" in name:
                # Gemma and Qwen2 tie lm_head to the embeddings: small rows stop the model from just
                # copying its input token (a degenerate greedy run would make parity checks weak;
                # measured on the tiny Qwen2: std 0.3 repeats one token, 0.03 gives 8-15 distinct of 16).
                std = 1.0 if arch == "llama" else 0.03
                param.copy_(torch.randn(param.shape, generator=gen) * std)
            elif name.endswith(".bias"):
                # Qwen2's q/k/v biases: large enough that dropping or misplacing one would show.
                param.copy_(torch.randn(param.shape, generator=gen) * 0.3)
            else:
                fan_in = param.shape[-1]
                param.copy_(torch.randn(param.shape, generator=gen) / fan_in**0.5)


def _hf_bpe_tokenizer(vocab: BpeVocab) -> Any:
    """The byte-level BPE as Qwen2's ``tokenizer.json`` has it: regex split, byte-level, no BOS."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    specials = [p for p, t in zip(vocab.pieces, vocab.types, strict=True) if t == TOKEN_CONTROL]
    ids = {piece: i for i, piece in enumerate(vocab.pieces) if piece not in specials}
    merges = [(a, b) for a, _, b in (m.partition(" ") for m in vocab.merges)]
    tok = Tokenizer(models.BPE(vocab=ids, merges=merges, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(p, special=True, normalized=False) for p in specials])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=vocab.pieces[vocab.bos_id],
        eos_token=vocab.pieces[vocab.eos_id],
        pad_token=vocab.pieces[vocab.pad_id],
    )


def _hf_tokenizer(vocab: SpmVocab | BpeVocab) -> Any:
    if isinstance(vocab, BpeVocab):
        return _hf_bpe_tokenizer(vocab)
    """The same byte-fallback vocab as a ``tokenizers`` BPE (no merges: every piece is one character)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, processors
    from transformers import PreTrainedTokenizerFast

    ids = {piece: i for i, piece in enumerate(vocab.pieces)}
    tok = Tokenizer(models.BPE(vocab=ids, merges=[], unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    if vocab.add_space_prefix:
        tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
        tok.decoder = decoders.Sequence(
            [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
        )
    else:
        tok.normalizer = normalizers.Replace(" ", "▁")
        tok.decoder = decoders.Sequence(
            [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
        )
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", vocab.bos_id)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<unk>"
    )


def build_tiny(arch: TinyArch, out_dir: Path, seed: int = 0, n_layers: int = 2) -> TinyModel:
    """Build (or rebuild) a tiny random model under ``out_dir``: ``hf/`` and ``tiny-<arch>.gguf``."""
    import torch
    from transformers import AutoModelForCausalLM

    if arch not in TINY_ARCHS:
        raise ValueError(f"unknown tiny arch {arch!r}")
    vocab = tiny_vocab(arch)
    config = _config(arch, vocab, n_layers)
    torch.manual_seed(seed)  # the constructor's own init; overwritten below, but keeps it reproducible
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    _randomize(model, arch, seed)
    model.eval()

    out_dir = Path(out_dir)
    hf_dir = out_dir / "hf"
    model.save_pretrained(hf_dir)
    _hf_tokenizer(vocab).save_pretrained(hf_dir)

    state = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    gguf_path = write_gguf(arch, state, config, vocab, out_dir / f"tiny-{arch}.gguf", name=f"tiny-{arch}")
    return TinyModel(hf_dir=hf_dir, gguf_path=gguf_path, arch=arch, n_layers=n_layers, vocab_size=len(vocab))
