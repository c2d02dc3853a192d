"""The torch merge slot's stacked layout: one batched GEMM per projection must give exactly the per-matrix
merge W0 + B_cat·diag(g_ℓ)·A_cat, in every shape of coverage (all layers, scattered layers, chunks, a later
bundle that leaves a projection alone)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from bdc_assistant.disen import torch_apply
from bdc_assistant.disen.bundle import load_bundle
from bdc_assistant.disen.compose import Customization
from bdc_assistant.disen.random_bundle import make_random_bundle
from bdc_assistant.disen.torch_apply import TorchMergeSlot, _Stack, _StackPlan, find_targets

from .conftest import EFFECT_SCALE, load_torch, random_g


def _reference(bundle: Any, g: np.ndarray, key: tuple[int, str]) -> np.ndarray:
    a = bundle.cat.A[key].astype(np.float64)
    b = bundle.cat.B[key].astype(np.float64)
    return b @ (g[key[0]].astype(np.float64)[:, None] * a)


def test_targets_share_one_stack_per_projection(tiny_models):
    model = load_torch(tiny_models["qwen2"].hf_dir)
    slot = TorchMergeSlot(model)
    linears = find_targets(model)
    by_module: dict[str, set[int]] = {}
    for (_layer, module), stack_pos in slot._stack_of.items():
        by_module.setdefault(module, set()).add(id(stack_pos[0]))
    assert set(by_module) == {m for _, m in linears}
    assert all(len(ids) == 1 for ids in by_module.values())  # one stack per projection, not per layer
    for key, (stack, pos) in slot._stack_of.items():
        assert linears[key].weight.data_ptr() == stack.w[pos].data_ptr()  # the module reads the stack


@pytest.mark.parametrize("chunk", [1 << 26, 1])  # one GEMM per projection, and one layer per chunk
def test_stacked_merge_equals_the_per_matrix_formula(tiny_models, loaded_bundles, monkeypatch, chunk):
    monkeypatch.setattr(torch_apply, "_CHUNK_ELEMENTS", chunk)
    bundle = loaded_bundles["qwen2"]
    slot = TorchMergeSlot(load_torch(tiny_models["qwen2"].hf_dir))
    g = random_g(bundle, 3)
    slot.apply(Customization.from_g(bundle, g))
    for key in bundle.cat.A:
        want = _reference(bundle, g, key)
        assert np.abs(slot.current_delta(*key) - want).max() < 1e-5 * max(1.0, np.abs(want).max())
        assert np.abs(want).max() > 1e-3  # a merge that did nothing could not pass


def test_a_bundle_without_a_projection_puts_it_back_to_w0(tiny_models, loaded_bundles, tmp_path):
    tm = tiny_models["qwen2"]
    full = loaded_bundles["qwen2"]
    narrow = load_bundle(
        make_random_bundle(
            tm.hf_dir, tmp_path / "qd", seed=9, scale=EFFECT_SCALE, targets=("q_proj", "down_proj")
        )
    )
    slot = TorchMergeSlot(load_torch(tm.hf_dir))
    slot.apply(Customization.from_g(full, random_g(full, 1)))
    g = random_g(narrow, 2)
    slot.apply(Customization.from_g(narrow, g))
    for key in full.cat.A:
        delta = slot.current_delta(*key)
        if key[1] in ("q_proj", "down_proj"):
            assert np.abs(delta - _reference(narrow, g, key)).max() < 1e-5
        else:
            assert np.array_equal(delta, np.zeros_like(delta))  # exactly W0 again
    slot.clear()
    assert all(
        np.array_equal(slot.current_delta(*k), np.zeros_like(slot.current_delta(*k))) for k in full.cat.A
    )


def _linears(n: int, seed: int, dtype: Any) -> list[Any]:
    import torch

    torch.manual_seed(seed)
    return [torch.nn.Linear(6, 5, bias=False).to(dtype) for _ in range(n)]


@pytest.mark.parametrize("dtype_name", ["float32", "bfloat16"])
def test_scattered_layers_merge_and_the_rest_keep_w0(dtype_name):
    import torch

    dtype = getattr(torch, dtype_name)
    lins = _linears(4, 0, dtype)
    stack = _Stack(lins)
    w0 = np.stack([lin.weight.detach().double().numpy() for lin in lins])
    rng = np.random.default_rng(0)
    a = [torch.tensor(rng.standard_normal((3, 6)), dtype=torch.float32) for _ in range(2)]
    b = [torch.tensor(rng.standard_normal((5, 3)), dtype=torch.float32) for _ in range(2)]
    plan = _StackPlan(stack, [0, 2], [0, 2], a, b)  # layers 0 and 2 of 4: not a contiguous slice
    g = torch.tensor(rng.uniform(0, 1, (4, 3)), dtype=torch.float32)
    with torch.no_grad():
        TorchMergeSlot._merge_stack(stack, plan, lambda _d: g)
    got = np.stack([lin.weight.detach().double().numpy() for lin in lins])
    tol = 0.0 if dtype == torch.float32 else 2.0**-7 * np.abs(got).max()
    for i, layer in enumerate((0, 2)):
        want = w0[layer] + b[i].double().numpy() @ (
            g[layer].double().numpy()[:, None] * a[i].double().numpy()
        )
        assert np.abs(got[layer] - want).max() <= max(tol, 1e-5)
    assert np.array_equal(got[[1, 3]], w0[[1, 3]])  # untouched layers keep W0 bit for bit


def test_weights_replaced_after_stacking_are_refused_not_silently_unmerged(tiny_models, loaded_bundles):
    import torch

    from bdc_assistant.errors import BundleError

    bundle = loaded_bundles["qwen2"]
    model = load_torch(tiny_models["qwen2"].hf_dir)
    slot = TorchMergeSlot(model)
    slot.apply(Customization.from_g(bundle, random_g(bundle, 1)))
    model.to(torch.float64)  # new tensors: the modules no longer read the stacks
    with pytest.raises(BundleError, match="moved or replaced"):
        slot.apply(Customization.from_g(bundle, random_g(bundle, 2)))
