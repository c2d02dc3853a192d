"""End-to-end wiring of ``Generator.set_customization`` on both backends with a real (random) bundle.

The DisenLoRA tests check the adapter math on raw runtimes; this checks what the solver relies on: after
``set_customization(c)`` both generators compute the same customized model, switching to another query's
customization in the same process works (no stale KV cache or stale merged weights), and ``None``
restores the plain base exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bdc_assistant.backends.base import GenerationParams
from bdc_assistant.models.tiny import TinyModel

from .conftest import ARCHS


@pytest.fixture(scope="module")
def bundles(tiny_models: dict[str, TinyModel], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from bdc_assistant.disen.bundle import load_bundle
    from bdc_assistant.disen.random_bundle import make_random_bundle

    root = tmp_path_factory.mktemp("wiring_bundles")
    return {
        arch: load_bundle(make_random_bundle(m.hf_dir, root / arch, K=3, r=4, seed=5, scale=0.1))
        for arch, m in tiny_models.items()
    }


def _g(bundle: Any, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(0.0, 1.0, (bundle.n_layers, bundle.K * bundle.r)).astype(np.float32)


@pytest.mark.parametrize("arch", ARCHS)
def test_set_customization_same_model_on_both_backends(
    arch: str, tiny_models: dict[str, TinyModel], bundles: dict[str, Any], tmp_path: Path
) -> None:
    from bdc_assistant.backends.llamacpp_backend import LlamaCppGenerator
    from bdc_assistant.backends.torch_backend import TorchGenerator
    from bdc_assistant.disen.compose import Customization

    bundle = bundles[arch]
    cpp = LlamaCppGenerator(tiny_models[arch].gguf_path, n_ctx=128, threads=1, kv_f32=True)
    hf = TorchGenerator(tiny_models[arch].hf_dir, device="cpu")
    try:
        ids = cpp.tokenize("def add(a, b): return a + b")
        base_c, base_t = cpp.eval_logits(ids), hf.eval_logits(ids)
        prompt_text = "".join(cpp.generate("def add(a, b):", GenerationParams(max_tokens=4)))
        deltas = []
        for seed in (1, 2):  # two queries in a row: the second must not see the first's state
            c = Customization.from_g(bundle, _g(bundle, seed))
            cpp.set_customization(c)
            hf.set_customization(c)
            got_c, got_t = cpp.eval_logits(ids), hf.eval_logits(ids)
            effect = float(np.abs(got_t - base_t).max())
            diff = float(np.abs(got_c - got_t).max())
            print(f"{arch} query {seed}: effect {effect:.3f}, llama.cpp vs torch {diff:.2e}")
            assert effect > 0.3  # the customization really changes the model
            assert diff < 1e-2  # f16 adapter on llama.cpp vs exact merge on torch
            assert cpp.greedy_tokens(ids, 8) == hf.greedy_tokens(ids, 8)
            deltas.append(got_t)
        assert float(np.abs(deltas[0] - deltas[1]).max()) > 0.05  # different queries, different models
        cpp.set_customization(None)
        hf.set_customization(None)
        np.testing.assert_allclose(hf.eval_logits(ids), base_t, atol=1e-5)
        np.testing.assert_allclose(cpp.eval_logits(ids), base_c, atol=1e-5)
        assert "".join(cpp.generate("def add(a, b):", GenerationParams(max_tokens=4))) == prompt_text
    finally:
        cpp.close()
        hf.close()
