"""The hypernetwork: torch and numpy forwards agree; shapes and normalisations hold; gradients flow."""

from __future__ import annotations

import numpy as np
import pytest

from bdc_assistant.disen.hypernet import build_hypernet, hypernet_from_state, hypernet_numpy, state_to_numpy


def _inputs(b: int, d: int, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    e = rng.standard_normal((b, d)).astype(np.float32)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    mu = rng.standard_normal((k, d)).astype(np.float32)
    mu /= np.linalg.norm(mu, axis=1, keepdims=True)
    return e, e @ mu.T


def _randomize(net, seed: int = 0) -> None:
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)


@pytest.mark.parametrize("normalization", ["sigmoid", "softmax", "none"])
def test_numpy_forward_matches_torch(normalization):
    import torch

    L, K, r, d = 5, 3, 4, 32
    net = build_hypernet(d, K, L, K, r, hidden=16, normalization=normalization, seed=0)
    _randomize(net)
    e, cos = _inputs(6, d, K)
    with torch.no_grad():
        g_t = net(torch.from_numpy(e), torch.from_numpy(cos)).numpy()
    g_n = hypernet_numpy(state_to_numpy(net), e, cos, n_layers=L, K=K, r=r, normalization=normalization)
    assert g_t.shape == g_n.shape == (6, L, K * r)
    assert np.array_equal(hypernet_numpy(state_to_numpy(net), e, cos), g_n)  # the state describes itself
    assert np.abs(g_t - g_n).max() <= 1e-5
    if normalization == "sigmoid":
        assert g_n.min() > 0 and g_n.max() < 1
    if normalization == "softmax":
        per_slot = g_n.reshape(6, L, K, r).sum(axis=2)
        assert np.allclose(per_slot, K, atol=1e-5)
    rebuilt = hypernet_from_state(state_to_numpy(net), net.config())
    with torch.no_grad():
        assert torch.equal(
            rebuilt(torch.from_numpy(e), torch.from_numpy(cos)),
            net(torch.from_numpy(e), torch.from_numpy(cos)),
        )


def test_initial_gates_are_half_and_one_gradient_step_makes_them_depend_on_the_input():
    import torch

    L, K, r, d = 2, 3, 4, 8
    net = build_hypernet(d, K, L, K, r, hidden=8, seed=1)
    e, cos = _inputs(2, d, K, seed=1)
    g = net(torch.from_numpy(e), torch.from_numpy(cos))
    assert torch.allclose(g, torch.full_like(g, 0.5))
    loss = (g[0] - 1.0).pow(2).sum() + g[1].pow(2).sum()
    loss.backward()
    assert net.out.weight.grad is not None and net.out.weight.grad.abs().sum() > 0
    with torch.no_grad():
        for p in net.parameters():
            p -= 0.5 * (p.grad if p.grad is not None else 0)
    g2 = net(torch.from_numpy(e), torch.from_numpy(cos))
    assert not torch.allclose(g2[0], g2[1])  # it now depends on the input


def test_seed_is_reproducible_and_leaves_global_rng_alone():
    import torch

    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = build_hypernet(8, 2, 2, 2, 2, hidden=4, seed=5)
    after = torch.rand(1)
    b = build_hypernet(8, 2, 2, 2, 2, hidden=4, seed=5)
    assert torch.equal(before, after)
    assert all(
        torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )
