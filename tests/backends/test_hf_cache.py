"""GGUF → cached HF dir for the torch backend, checked on the tiny GGUFs (real transformers GGUF loader)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bdc_assistant.errors import ModelError
from bdc_assistant.models import hf_cache
from bdc_assistant.models.tiny import TinyModel

from .conftest import ARCHS, truncated_copy


@pytest.fixture
def private_models_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "models"
    monkeypatch.setenv("BDC_MODELS_DIR", str(d))
    return d


@pytest.mark.parametrize("arch", ARCHS)
def test_dequantized_cache_matches_llamacpp(
    arch: str,
    private_models_dir: Path,
    tiny_models: dict[str, TinyModel],
    llama_gens: dict[str, Any],
    torch_gens: dict[str, Any],
) -> None:
    from bdc_assistant.backends.torch_backend import TorchGenerator

    gguf = tiny_models[arch].gguf_path
    assert not hf_cache.is_cached(gguf)
    out = hf_cache.hf_dir_for_gguf(gguf)
    assert out.parent == private_models_dir and out.name.startswith("hf-")
    assert (out / hf_cache.MARKER).is_file() and (out / "model.safetensors").is_file()
    assert hf_cache.is_cached(gguf)
    assert not [p for p in private_models_dir.iterdir() if p.name.endswith(".partial")]

    gen = TorchGenerator(out, device="cpu")
    try:
        ids = llama_gens[arch].tokenize("The quick brown fox jumps over the lazy dog, twice!")
        assert gen.tokenize("The quick brown fox jumps over the lazy dog, twice!") == ids
        from_cache = gen.eval_logits(ids)
        original = torch_gens[arch].eval_logits(ids)
        cpp = llama_gens[arch].eval_logits(ids)
        d_orig = float(np.abs(from_cache - original).max())
        d_cpp = float(np.abs(from_cache - cpp).max())
        print(f"{arch}: cache vs original HF {d_orig:.2e}, cache vs llama.cpp {d_cpp:.2e}")
        assert d_orig < 1e-4  # f32 GGUF → f32 safetensors round trip (q/k un-permuted, norms −1)
        assert d_cpp < 2e-2
        assert gen.greedy_tokens(ids, 16) == llama_gens[arch].greedy_tokens(ids, 16)
    finally:
        gen.close()

    # Second call: served from the cache, nothing rebuilt.
    mtime = (out / "model.safetensors").stat().st_mtime_ns
    t = time.perf_counter()
    assert hf_cache.hf_dir_for_gguf(gguf) == out
    assert time.perf_counter() - t < 1.0
    assert (out / "model.safetensors").stat().st_mtime_ns == mtime


def test_truncated_gguf_leaves_no_partial_dir(
    private_models_dir: Path, tiny_models: dict[str, TinyModel], tmp_path: Path
) -> None:
    cut = truncated_copy(tiny_models["gemma3"].gguf_path, tmp_path / "cut.gguf", 0.5)
    with pytest.raises(ModelError) as info:
        hf_cache.hf_dir_for_gguf(cut)
    print(info.value)
    assert "\n" not in str(info.value)
    leftovers = [p for p in private_models_dir.iterdir() if p.is_dir()] if private_models_dir.exists() else []
    assert leftovers == []


def test_missing_gguf(private_models_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        hf_cache.hf_dir_for_gguf(tmp_path / "nope.gguf")


@pytest.mark.slow
def test_embedded_base_torch_matches_llamacpp(embedded_base_gguf: Path) -> None:
    """The real base (Qwen2.5-Coder-0.5B-Instruct Q4_K_M): dequantized once (~2 min on first run, cached by
    sha256), then the same greedy text on both backends."""
    from bdc_assistant.backends.base import GenerationParams
    from bdc_assistant.backends.llamacpp_backend import LlamaCppGenerator
    from bdc_assistant.backends.torch_backend import TorchGenerator

    hf_dir = hf_cache.hf_dir_for_gguf(embedded_base_gguf)
    cpp = LlamaCppGenerator(embedded_base_gguf, n_ctx=512, threads=2)
    hf = TorchGenerator(hf_dir, device="cpu")
    try:
        prompt = 'def fib(n):\n    """Return the n-th Fibonacci number."""\n'
        ids = cpp.tokenize(prompt)
        assert hf.tokenize(prompt) == ids
        a, b = cpp.eval_logits(ids), hf.eval_logits(ids)
        print(
            f"{embedded_base_gguf.name}: max |Δlogit| {float(np.abs(a - b).max()):.3f} (Q8 activations in llama.cpp)"
        )
        assert (a.argmax(-1) == b.argmax(-1)).mean() > 0.9
        # llama.cpp multiplies Q4_K weights with Q8-quantized activations, torch uses the f32 dequantized
        # weights: logits differ by O(1), so only the confident opening of the answer must agree.
        assert cpp.greedy_tokens(ids, 8) == hf.greedy_tokens(ids, 8)
        text = "".join(hf.generate(prompt, GenerationParams(max_tokens=8)))
        assert text.startswith("    if n")
    finally:
        cpp.close()
        hf.close()


def test_open_generator_torch_from_gguf_goes_through_the_cache(
    private_models_dir: Path, tiny_models: dict[str, TinyModel], monkeypatch: pytest.MonkeyPatch
) -> None:
    from bdc_assistant.backends import gpu, select
    from bdc_assistant.config import load_settings

    monkeypatch.setattr(gpu, "cuda_available", lambda: False)
    gguf = tiny_models["llama"].gguf_path
    gen = select.open_generator(load_settings(), "torch", gguf=gguf)
    try:
        assert gen.name == "torch"
        assert gen.hf_dir == hf_cache.cache_dir_for(gguf)  # type: ignore[attr-defined]
        assert gen.hf_dir.parent == private_models_dir  # type: ignore[attr-defined]
    finally:
        gen.close()
