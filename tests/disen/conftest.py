"""Fixtures for the DisenLoRA tests: tiny random Llama / Gemma-3 / Qwen2 models (HF dir + F32 GGUF with the same
weights, built once per session) and random K=3, r=4 bundles for them.

llama.cpp is opened with an f32 KV cache here: the default f16 cache alone moves tiny-model logits by
~1e-3, which would hide the adapter errors the parity tests are meant to measure.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bdc_assistant.disen.bundle import Bundle, load_bundle
from bdc_assistant.disen.random_bundle import make_random_bundle

ARCHS = ("llama", "gemma3", "qwen2")
EFFECT_SCALE = 0.1  # random experts' ΔW size: moves tiny-model logits by ~0.7-2, clearly ≥ 0.3


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from bdc_assistant.models.tiny import build_tiny

    root = tmp_path_factory.mktemp("tiny_models")
    return {arch: build_tiny(arch, root / arch, seed=0) for arch in ARCHS}


@pytest.fixture(scope="session")
def tiny_bundles(tiny_models: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny_bundles")
    return {
        arch: make_random_bundle(tm.hf_dir, root / arch, K=3, r=4, seed=7, scale=EFFECT_SCALE)
        for arch, tm in tiny_models.items()
    }


@pytest.fixture(scope="session")
def loaded_bundles(tiny_bundles: dict[str, Path]) -> dict[str, Bundle]:
    return {arch: load_bundle(p) for arch, p in tiny_bundles.items()}


def open_llama(gguf_path: Path, n_ctx: int = 128) -> Any:
    from llama_cpp import Llama

    return Llama(
        model_path=str(gguf_path),
        n_ctx=n_ctx,
        n_threads=2,
        n_threads_batch=2,
        logits_all=True,
        verbose=False,
        type_k=0,
        type_v=0,
        seed=0,
    )


def llama_logits(llm: Any, ids: list[int]) -> np.ndarray:
    llm.reset()
    llm.eval(ids)
    return np.array(llm.scores[: len(ids)], dtype=np.float64)


def torch_logits(model: Any, ids: list[int]) -> np.ndarray:
    import torch

    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].double().numpy()


def load_torch(hf_dir: Path) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()


def token_ids(vocab_size: int, n: int = 20, seed: int = 0) -> list[int]:
    rng = np.random.default_rng(seed)
    return [int(x) for x in rng.integers(3, vocab_size, n)]


def random_g(bundle: Bundle, seed: int) -> np.ndarray:
    return (
        np.random.default_rng(seed)
        .uniform(0.0, 1.0, (bundle.n_layers, bundle.K * bundle.r))
        .astype(np.float32)
    )


@pytest.fixture()
def make_g() -> Callable[[Bundle, int], np.ndarray]:
    return random_g
