"""TWIN (Twin-Merging): shared + exclusive parts reconstruct each expert, truncation error falls with rank,
the router separates clusters, and the bundle the app runs gives ΔW(e) = Ŝ + Σ_k w_k(e) Ê_k."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from trainer.merges import merge_delta, read_adapter
from trainer.twin import (
    RouterConfig,
    build_twin_experts,
    cosine_router_state,
    router_weights,
    save_twin_bundle,
    train_router,
    twin_decompose,
)


def _low_rank_deltas(k: int, r: int, shape: tuple[int, int], seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randn(shape[0], r, generator=g, dtype=torch.float64)
        @ torch.randn(r, shape[1], generator=g, dtype=torch.float64)
        for _ in range(k)
    ]


def _reconstruction_errors(deltas, **kw) -> list[float]:
    (b_s, a_s), exclusive, _ = twin_decompose(deltas, **kw)
    return [
        float((b_s @ a_s + b_e @ a_e - d).norm() / d.norm())
        for (b_e, a_e), d in zip(exclusive, deltas, strict=True)
    ]


@pytest.mark.parametrize("shared", ["mean", "ties"])
def test_shared_plus_exclusive_at_full_rank_is_each_expert(shared: str) -> None:
    deltas = _low_rank_deltas(3, 2, (12, 10), seed=0)
    errs = _reconstruction_errors(
        deltas, shared=shared, density=0.5, shared_rank=10, exclusive_rank=10, seed=0
    )
    assert max(errs) < 1e-12, errs
    # the shared part is the static merge: the mean, or TIES at the given density
    (b_s, a_s), _, stats = twin_decompose(
        deltas, shared=shared, density=0.5, shared_rank=10, exclusive_rank=10, seed=0
    )
    expect = (
        sum(deltas) / 3
        if shared == "mean"
        else merge_delta([d.float() for d in deltas], "ties", 0.5, 0).double()
    )
    assert torch.allclose(b_s @ a_s, expect, atol=1e-5)
    assert stats["shared_err"] < 1e-20


def test_truncation_error_decreases_with_the_exclusive_rank() -> None:
    deltas = _low_rank_deltas(3, 2, (12, 10), seed=1)
    # Ŝ at rank 2, each ΔW_k at rank 2: E_k = ΔW_k − Ŝ has rank ≤ 4, so rank 4 is exact
    curve = [
        max(
            _reconstruction_errors(
                deltas, shared="mean", density=1.0, shared_rank=2, exclusive_rank=re, seed=0
            )
        )
        for re in range(0, 6)
    ]
    assert all(a > b for a, b in itertools.pairwise(curve[:5])), curve  # strictly down to exact
    assert curve[4] < 1e-12 and curve[5] < 1e-12, curve
    assert curve[0] > 0.3  # the shared part alone is far from any one expert


def test_unknown_shared_method_is_refused() -> None:
    with pytest.raises(ValueError):
        twin_decompose(
            _low_rank_deltas(2, 1, (3, 3), 0),
            shared="dare",
            density=1,
            shared_rank=1,
            exclusive_rank=1,
            seed=0,
        )


def _around(mu: np.ndarray, labels: np.ndarray, rng: np.random.Generator, noise: float = 0.35) -> np.ndarray:
    e = mu[labels] + noise * rng.standard_normal((len(labels), mu.shape[1])) / np.sqrt(mu.shape[1])
    return (e / np.linalg.norm(e, axis=1, keepdims=True)).astype(np.float32)


def _separable(k: int, d: int, per: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    mu = rng.standard_normal((k, d))
    mu = (mu / np.linalg.norm(mu, axis=1, keepdims=True)).astype(np.float32)
    labels = np.repeat(np.arange(k), per)
    return _around(mu, labels, rng), mu, labels


def test_trained_router_picks_the_right_cluster_on_separable_embeddings() -> None:
    e, mu, labels = _separable(3, 16, 20, seed=0)
    router, fit = train_router(e, mu, labels, RouterConfig(hidden=16, steps=150), seed=0)
    assert fit["router_train_accuracy"] == 1.0
    held_labels = np.repeat(np.arange(3), 10)
    held_out = _around(mu, held_labels, np.random.default_rng(5))
    w = router_weights(router, held_out, mu)
    assert np.allclose(w.sum(axis=1), 1.0, atol=1e-6)
    assert np.mean(w.argmax(axis=1) == held_labels) >= 0.95
    # a router trained on shuffled labels cannot do this (the test can fail)
    shuffled = np.random.default_rng(1).permutation(labels)
    bad, _ = train_router(e, mu, shuffled, RouterConfig(hidden=16, steps=150), seed=0)
    assert np.mean(router_weights(bad, held_out, mu).argmax(axis=1) == held_labels) < 0.8


def test_cosine_router_is_softmax_of_cosines_over_temperature() -> None:
    e, mu, labels = _separable(3, 16, 5, seed=2)
    tau = 0.05
    w = router_weights(cosine_router_state(16, 3, tau), e, mu)
    z = (e @ mu.T) / tau
    expect = np.exp(z - z.max(axis=1, keepdims=True))
    expect /= expect.sum(axis=1, keepdims=True)
    assert np.allclose(w, expect, atol=1e-4)
    assert np.array_equal(w.argmax(axis=1), labels)


def _expert_deltas(dirs: list[Path]) -> dict:
    out: dict = {}
    for d in dirs:
        ab, s, _ = read_adapter(d)
        for key, (a, b) in ab.items():
            out.setdefault(key, []).append(s * b.astype(np.float64) @ a.astype(np.float64))
    return out


def test_twin_bundle_runs_shared_plus_routed_exclusive(
    tiny_llama, two_experts: list[Path], tmp_path: Path
) -> None:
    from bdc_assistant.disen.bundle import load_bundle
    from bdc_assistant.disen.compose import reference_delta
    from bdc_assistant.disen.identity import identity_of_hf_dir

    ident, _ = identity_of_hf_dir(tiny_llama.hf_dir)
    dirs, metrics = build_twin_experts(
        two_experts,
        shared="mean",
        density=1.0,
        shared_rank=4,
        exclusive_rank=6,
        seed=0,
        out_dir=tmp_path / "tw",
    )
    assert metrics["expert_reconstruction_relative_error"] < 1e-6
    assert metrics["shared_svd_relative_error"] < 1e-6  # the mean of two rank-2 deltas has rank ≤ 4
    mu = np.eye(8, dtype=np.float32)[:2]
    router = cosine_router_state(8, 2, 0.05)
    out = save_twin_bundle(
        tmp_path / "bundle",
        dirs,
        router,
        router_kind="cosine",
        base=ident.as_dict(),
        encoder={"name": "enc", "dim": 8},
        centroids=mu,
        names=["a", "b"],
        provenance={"data_hash": "x"},
        metrics=metrics,
    )
    b = load_bundle(out, expect_base=ident)
    assert b.K == 2 and b.r == 10 and b.manifest["hypernet"]["kind"] == "twin-router"
    experts = _expert_deltas(two_experts)
    shared = {key: (d0 + d1) / 2 for key, (d0, d1) in experts.items()}

    # one embedding between the centroids: g_k = K·w_k in every slot, ΔW = Ŝ + Σ w_k Ê_k = Σ w_k ΔW_k here
    e = np.array([0.8, 0.6, 0, 0, 0, 0, 0, 0], np.float32)
    g, _ = b.gates_for(e)
    w = router_weights(router, e[None], mu)[0]
    assert np.allclose(g.reshape(b.n_layers, 2, 10), 2 * w[None, :, None], atol=1e-5)
    for (layer, module), (d0, d1) in experts.items():
        got = reference_delta(b.experts, g, layer, module)
        assert np.allclose(got, w[0] * d0 + w[1] * d1, atol=1e-5)
        assert np.allclose(b.cat.delta(g, layer, module), got, atol=1e-5)  # what both backends apply
        # and that is the shared part plus the routed exclusive parts
        assert np.allclose(
            got,
            shared[layer, module] + w[0] * (d0 - shared[layer, module]) + w[1] * (d1 - shared[layer, module]),
            atol=1e-5,
        )

    # at a centroid the router is one-hot: the query gets that expert's ΔW back
    g1, _ = b.gates_for(mu[1])
    for (layer, module), (_d0, d1) in experts.items():
        assert np.allclose(reference_delta(b.experts, g1, layer, module), d1, atol=1e-4)
