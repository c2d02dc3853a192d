"""The arg-max-per-layer approximation: its math, its llama-server scales, and that `bdc serve --mixture
argmax` answers with it (one expert per layer in the response's gates)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bdc_assistant.serve.approx import ArgmaxCustomizer, apply_mixture, argmax_layer_g, llama_server_lora


def test_argmax_keeps_the_heaviest_expert_per_layer_as_one_scale() -> None:
    g = np.array(
        [
            [0.9, 0.8, 0.1, 0.2, 0.3, 0.3],  # K=3, r=2: masses 1.7, 0.3, 0.6 -> expert 0
            [0.1, 0.1, 0.2, 0.9, 0.5, 0.5],  # masses 0.2, 1.1, 1.0 -> expert 1
        ],
        np.float32,
    )
    out, experts, scales = argmax_layer_g(g, n_experts=3, rank=2)
    assert experts.tolist() == [0, 1]
    np.testing.assert_allclose(scales, [0.85, 0.55], rtol=1e-6)
    np.testing.assert_allclose(out, [[0.85, 0.85, 0, 0, 0, 0], [0, 0, 0.55, 0.55, 0, 0]], rtol=1e-6)
    assert llama_server_lora(experts, scales, 3) == [
        {"id": 0, "scale": pytest.approx(0.85)},
        {"id": 4, "scale": pytest.approx(0.55)},
    ]
    with pytest.raises(ValueError):
        argmax_layer_g(g, n_experts=2, rank=2)


@pytest.fixture(scope="module")
def real_format_bundle(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A random bundle in the production format for a small Llama shape (no model weights needed)."""
    from bdc_assistant.disen.bundle import load_bundle
    from bdc_assistant.disen.identity import ModelShape
    from bdc_assistant.disen.random_bundle import make_random_bundle

    shape = ModelShape(
        arch="llama",
        n_layers=3,
        hidden=16,
        intermediate=32,
        n_heads=2,
        n_kv_heads=2,
        head_dim=8,
        vocab_size=64,
    )
    path = make_random_bundle(shape, tmp_path_factory.mktemp("approx") / "b", K=3, r=4, seed=1)
    return load_bundle(Path(path))


def test_argmax_customizer_wraps_the_real_customization(real_format_bundle: Any) -> None:
    from bdc_assistant.disen.compose import Customization

    bundle = real_format_bundle
    rng = np.random.default_rng(0)

    class Inner:
        name = "random"

        def for_query(self, text: str) -> Customization:
            return Customization.from_g(
                bundle, rng.uniform(0, 1, (bundle.n_layers, bundle.K * bundle.r)), label=text
            )

    wrapped = ArgmaxCustomizer(Inner())
    custom = wrapped.for_query("x")
    blocks = custom.g.reshape(bundle.n_layers, bundle.K, bundle.r)
    nonzero = (np.abs(blocks).sum(axis=2) > 0).sum(axis=1)
    assert nonzero.tolist() == [1] * bundle.n_layers  # one expert per layer
    assert all(len(set(np.round(b[b.sum(axis=1) > 0][0], 6))) == 1 for b in blocks)  # one scale per layer
    assert custom.gates.n_experts == bundle.K and wrapped.name == "random"


def test_apply_mixture_switches_solvers_once() -> None:
    from types import SimpleNamespace

    a, b = SimpleNamespace(customizer=object()), SimpleNamespace(customizer=None)
    apply_mixture([a, b], "exact")
    assert not isinstance(a.customizer, ArgmaxCustomizer)
    apply_mixture([a, b], "argmax")
    apply_mixture([a, b], "argmax")
    assert isinstance(a.customizer, ArgmaxCustomizer) and not isinstance(a.customizer.inner, ArgmaxCustomizer)
    assert b.customizer is None
    with pytest.raises(ValueError):
        apply_mixture([a], "mean")
