"""The tiny random models and the HF → GGUF exporter: files, metadata, determinism, conventions."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from bdc_assistant.errors import ModelError
from bdc_assistant.models import gguf_export
from bdc_assistant.models.tiny import TinyModel, build_tiny, tiny_vocab


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TinyModel]:
    root = tmp_path_factory.mktemp("tiny")
    return {arch: build_tiny(arch, root / arch, seed=0) for arch in ("llama", "gemma3", "qwen2")}


def _fields(path: Path) -> dict[str, object]:
    import gguf

    reader = gguf.GGUFReader(str(path))
    return {k: f.contents() for k, f in reader.fields.items()} | {
        "_tensors": {t.name: tuple(int(x) for x in t.shape) for t in reader.tensors}
    }


def test_build_tiny_writes_both_formats(built: dict[str, TinyModel]) -> None:
    for arch, m in built.items():
        assert m.arch == arch and m.n_layers == 2 and m.vocab_size == len(tiny_vocab(arch))
        assert (m.hf_dir / "config.json").is_file()
        assert (m.hf_dir / "model.safetensors").is_file()
        assert (m.hf_dir / "tokenizer.json").is_file()
        assert m.gguf_path.read_bytes()[:4] == b"GGUF"


def test_gguf_metadata_llama(built: dict[str, TinyModel]) -> None:
    f = _fields(built["llama"].gguf_path)
    assert f["general.architecture"] == "llama"
    assert f["llama.block_count"] == 2 and f["llama.embedding_length"] == 64
    assert f["llama.attention.head_count"] == 4 and f["llama.attention.head_count_kv"] == 2
    assert f["llama.rope.dimension_count"] == 16
    assert f["tokenizer.ggml.model"] == "llama"
    tensors = f["_tensors"]
    assert isinstance(tensors, dict)
    assert "output.weight" in tensors  # untied lm_head
    assert {f"blk.{i}.{n}.weight" for i in range(2) for n in ("attn_q", "attn_k", "ffn_norm")} <= set(tensors)


def test_gguf_metadata_gemma3(built: dict[str, TinyModel]) -> None:
    f = _fields(built["gemma3"].gguf_path)
    assert f["general.architecture"] == "gemma3"
    assert f["gemma3.attention.sliding_window"] == 8
    assert f["gemma3.attention.sliding_window_pattern"] == [True, False]
    assert f["gemma3.rope.freq_base"] == 1_000_000.0 and f["gemma3.rope.freq_base_swa"] == 10_000.0
    assert f["gemma3.attention.key_length"] == 16
    assert f["tokenizer.ggml.add_space_prefix"] is False
    tensors = f["_tensors"]
    assert isinstance(tensors, dict)
    assert "output.weight" not in tensors  # tied to token_embd
    for name in ("attn_q_norm", "attn_k_norm", "post_attention_norm", "ffn_norm", "post_ffw_norm"):
        assert f"blk.0.{name}.weight" in tensors


def test_gguf_metadata_qwen2(built: dict[str, TinyModel]) -> None:
    """Qwen2 as convert_hf_to_gguf writes it: q/k rows as in HF (no permutation), biases, tied lm_head."""
    import gguf
    from safetensors.numpy import load_file

    f = _fields(built["qwen2"].gguf_path)
    assert f["general.architecture"] == "qwen2"
    assert f["qwen2.block_count"] == 2 and f["qwen2.attention.head_count_kv"] == 2
    assert f["qwen2.rope.freq_base"] == 1_000_000.0
    assert f["tokenizer.ggml.model"] == "gpt2" and f["tokenizer.ggml.pre"] == "qwen2"
    assert f["tokenizer.ggml.add_bos_token"] is False
    tensors = f["_tensors"]
    assert isinstance(tensors, dict)
    assert "output.weight" not in tensors  # tied to token_embd
    hf = load_file(built["qwen2"].hf_dir / "model.safetensors")
    data = {t.name: np.asarray(t.data) for t in gguf.GGUFReader(str(built["qwen2"].gguf_path)).tensors}
    for i in range(2):
        for stem, mod in (("attn_q", "q_proj"), ("attn_k", "k_proj"), ("attn_v", "v_proj")):
            np.testing.assert_array_equal(
                data[f"blk.{i}.{stem}.weight"], hf[f"model.layers.{i}.self_attn.{mod}.weight"]
            )
            np.testing.assert_array_equal(
                data[f"blk.{i}.{stem}.bias"], hf[f"model.layers.{i}.self_attn.{mod}.bias"]
            )
            assert float(np.abs(data[f"blk.{i}.{stem}.bias"]).max()) > 0.1  # biases that matter
        np.testing.assert_array_equal(
            data[f"blk.{i}.ffn_norm.weight"], hf[f"model.layers.{i}.post_attention_layernorm.weight"]
        )


def test_same_seed_same_bytes_other_seed_other_weights(built: dict[str, TinyModel], tmp_path: Path) -> None:
    again = build_tiny("llama", tmp_path / "again", seed=0)
    assert _sha(again.gguf_path) == _sha(built["llama"].gguf_path)
    assert _sha(again.hf_dir / "model.safetensors") == _sha(built["llama"].hf_dir / "model.safetensors")
    other = build_tiny("llama", tmp_path / "other", seed=1)
    assert _sha(other.gguf_path) != _sha(built["llama"].gguf_path)


def test_llama_permute_matches_transformers_reverse_permute() -> None:
    """Our q/k permutation must be exactly what transformers undoes when it reads a llama GGUF."""
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    rng = np.random.default_rng(0)
    w = rng.standard_normal((64, 48)).astype(np.float32)
    permuted = gguf_export.llama_permute(w, 4)
    assert not np.array_equal(permuted, w)
    back = LlamaTensorProcessor()._reverse_permute_weights(permuted, 4, 4)
    np.testing.assert_array_equal(back, w)


def test_gemma_norms_are_stored_plus_one(built: dict[str, TinyModel]) -> None:
    import gguf
    from safetensors.numpy import load_file

    hf = load_file(built["gemma3"].hf_dir / "model.safetensors")
    reader = gguf.GGUFReader(str(built["gemma3"].gguf_path))
    tensors = {t.name: np.asarray(t.data) for t in reader.tensors}
    np.testing.assert_array_equal(tensors["output_norm.weight"], hf["model.norm.weight"] + 1.0)
    np.testing.assert_array_equal(
        tensors["blk.1.attn_q_norm.weight"], hf["model.layers.1.self_attn.q_norm.weight"] + 1.0
    )
    np.testing.assert_array_equal(
        tensors["blk.1.attn_v.weight"], hf["model.layers.1.self_attn.v_proj.weight"]
    )


def test_exporter_refuses_what_llama_cpp_cannot_compute(built: dict[str, TinyModel], tmp_path: Path) -> None:
    from safetensors.numpy import load_file
    from transformers import AutoConfig

    m = built["gemma3"]
    config = AutoConfig.from_pretrained(m.hf_dir)
    state = load_file(m.hf_dir / "model.safetensors")
    config.query_pre_attn_scalar = 256
    with pytest.raises(ModelError, match="query_pre_attn_scalar"):
        gguf_export.write_gguf("gemma3", state, config, tiny_vocab("gemma3"), tmp_path / "x.gguf")
    config.query_pre_attn_scalar = 16
    with pytest.raises(ModelError, match="Cannot map tensor"):
        gguf_export.write_gguf(
            "gemma3",
            {**state, "model.extra.weight": state["model.norm.weight"]},
            config,
            tiny_vocab("gemma3"),
            tmp_path / "y.gguf",
        )
    with pytest.raises(ModelError, match="vocab has"):
        gguf_export.write_gguf(
            "gemma3", state, config, gguf_export.byte_fallback_vocab(["a"]), tmp_path / "z.gguf"
        )


def test_vocab_layout() -> None:
    v = tiny_vocab()
    assert v.pieces[:3] == ("<unk>", "<s>", "</s>")
    assert v.pieces[3] == "<0x00>" and v.pieces[258] == "<0xFF>"
    assert v.types[3] == gguf_export.TOKEN_BYTE and v.types[1] == gguf_export.TOKEN_CONTROL
    assert "▁" in v.pieces and "a" in v.pieces
    with pytest.raises(ModelError, match="duplicate"):
        gguf_export.byte_fallback_vocab(["a", "a"])
