"""Tensor level: ΔW from the torch module and from the adapter GGUF equals the float64 reference
Σ_k s_k B_k diag(g_k) A_k (f32 ≤ 1e-6 relative, f16 ≤ 2e-3); g = 0 gives 0; one-hot gives one expert."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bdc_assistant.disen import gguf_adapter
from bdc_assistant.disen.bundle import load_bundle
from bdc_assistant.disen.compose import Customization, build_cat, reference_delta
from bdc_assistant.disen.gguf_adapter import read_adapter_delta, read_template, write_template
from bdc_assistant.disen.modules import parent_of
from bdc_assistant.disen.random_bundle import make_random_bundle
from bdc_assistant.disen.torch_apply import TorchMergeSlot
from bdc_assistant.errors import BundleError

from .conftest import load_torch, random_g


def rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


@pytest.mark.parametrize("arch", ["llama", "gemma3", "qwen2"])
def test_torch_merge_delta_equals_reference(arch, tiny_models, loaded_bundles):
    bundle = loaded_bundles[arch]
    model = load_torch(tiny_models[arch].hf_dir)
    slot = TorchMergeSlot(model)
    g = random_g(bundle, 1)
    slot.apply(Customization.from_g(bundle, g))
    for layer, module in bundle.cat.layer_modules():
        ref = reference_delta(bundle.experts, g, layer, module)
        assert rel(slot.current_delta(layer, module), ref) <= 1e-6, (layer, module)
    slot.clear()
    for layer, module in bundle.cat.layer_modules():
        assert np.all(slot.current_delta(layer, module) == 0.0)


@pytest.mark.parametrize("arch", ["llama", "gemma3", "qwen2"])
@pytest.mark.parametrize(("dtype", "tol"), [("f32", 1e-6), ("f16", 2e-3)])
def test_gguf_adapter_delta_equals_reference(arch, dtype, tol, loaded_bundles, tmp_path):
    bundle = loaded_bundles[arch]
    g = random_g(bundle, 2)
    template = write_template(
        bundle.cat,
        tmp_path / "t.gguf",
        arch=arch,
        n_heads=4,
        n_kv_heads=2,
        bundle_id=bundle.bundle_id,
        dtype=dtype,
    )
    patched = template.private_copy(tmp_path / "q.gguf")
    template.patch(patched, bundle.cat, g)
    for layer, module in bundle.cat.layer_modules():
        got = read_adapter_delta(patched, layer, module, n_heads=4, n_kv_heads=2)
        ref = reference_delta(bundle.experts, g, layer, module)
        assert rel(got, ref) <= tol, (layer, module, rel(got, ref))


def test_template_patch_equals_direct_write(loaded_bundles, tmp_path):
    """Patching A* into the template gives the same bytes as writing the adapter with g directly."""
    bundle = loaded_bundles["llama"]
    g = random_g(bundle, 3)
    template = write_template(
        bundle.cat, tmp_path / "t.gguf", arch="llama", n_heads=4, n_kv_heads=2, bundle_id=bundle.bundle_id
    )
    patched = template.private_copy(tmp_path / "p.gguf")
    template.patch(patched, bundle.cat, g)
    direct = write_template(
        bundle.cat,
        tmp_path / "d.gguf",
        arch="llama",
        n_heads=4,
        n_kv_heads=2,
        bundle_id=bundle.bundle_id,
        g=g,
    )
    assert patched.read_bytes() == direct.path.read_bytes()
    assert len(read_template(patched).a_slots) == bundle.n_layers * 7


def test_zero_gates_give_zero_delta(loaded_bundles):
    bundle = loaded_bundles["gemma3"]
    g = np.zeros((bundle.n_layers, bundle.K * bundle.r), np.float32)
    for layer, module in bundle.cat.layer_modules():
        assert np.all(bundle.cat.delta(g, layer, module) == 0.0)
        assert np.all(reference_delta(bundle.experts, g, layer, module) == 0.0)


@pytest.mark.parametrize("k", [0, 1, 2])
def test_one_hot_gates_give_exactly_one_expert(k, tiny_models, loaded_bundles):
    bundle = loaded_bundles["llama"]
    g = np.zeros((bundle.n_layers, bundle.K * bundle.r), np.float32)
    g[:, k * bundle.r : (k + 1) * bundle.r] = 1.0
    model = load_torch(tiny_models["llama"].hf_dir)
    slot = TorchMergeSlot(model)
    slot.apply(Customization.from_g(bundle, g))
    ex = bundle.experts[k]
    for layer, module in bundle.cat.layer_modules():
        only_k = ex.scale * (
            ex.B[(layer, module)].astype(np.float64) @ ex.A[(layer, module)].astype(np.float64)
        )
        assert rel(slot.current_delta(layer, module), only_k) <= 1e-6
        assert rel(bundle.cat.delta(g, layer, module).astype(np.float64), only_k) <= 1e-6


def test_all_ones_gives_sum_of_experts(loaded_bundles):
    bundle = loaded_bundles["gemma3"]
    g = np.ones((bundle.n_layers, bundle.K * bundle.r), np.float32)
    for layer, module in bundle.cat.layer_modules():
        total = sum(
            ex.scale * (ex.B[(layer, module)].astype(np.float64) @ ex.A[(layer, module)].astype(np.float64))
            for ex in bundle.experts
        )
        assert rel(bundle.cat.delta(g, layer, module).astype(np.float64), total) <= 1e-6


def test_rslora_scale_is_alpha_over_sqrt_r(tiny_models, tmp_path: Path):
    """rsLoRA experts: s = α/√r folded into A_cat (peft's cat merge would over-scale by √(K·r))."""
    path = make_random_bundle(
        tiny_models["llama"].hf_dir, tmp_path / "rs", K=3, r=4, seed=3, use_rslora=True, lora_alpha=8.0
    )
    bundle = load_bundle(path)
    assert all(ex.scale == pytest.approx(8.0 / 2.0) for ex in bundle.experts)
    g = random_g(bundle, 4)
    for layer, module in list(bundle.cat.layer_modules())[:5]:
        ref = reference_delta(bundle.experts, g, layer, module)
        assert rel(bundle.cat.delta(g, layer, module).astype(np.float64), ref) <= 1e-6


def test_missing_scale_is_detectable(loaded_bundles):
    """Negative control for the reference itself: dropping s_k changes ΔW far beyond tolerance."""
    bundle = loaded_bundles["llama"]
    unscaled = [type(ex)(A=ex.A, B=ex.B, scale=1.0, rank=ex.rank) for ex in bundle.experts]
    bad = build_cat(unscaled, bundle.targets, bundle.n_layers)
    g = random_g(bundle, 5)
    ref = reference_delta(bundle.experts, g, 0, "q_proj")
    assert rel(bad.delta(g, 0, "q_proj").astype(np.float64), ref) > 0.1


def test_peft_get_delta_weight_agrees(tiny_models, loaded_bundles):
    """Our reading of an expert (A, B, s_k) matches peft's own get_delta_weight for that adapter."""
    import torch
    from peft import PeftModel

    bundle = loaded_bundles["gemma3"]
    model = load_torch(tiny_models["gemma3"].hf_dir)
    peft_model = PeftModel.from_pretrained(model, str(bundle.path / "experts" / "expert_1"))
    ex = bundle.experts[1]
    with torch.no_grad():
        for layer, module in [(0, "q_proj"), (1, "down_proj"), (1, "k_proj")]:
            parent = peft_model.base_model.model.model.layers[layer]
            lora_layer = getattr(getattr(parent, parent_of(module)), module)
            theirs = lora_layer.get_delta_weight("default").double().numpy()
            ours = ex.scale * (
                ex.B[(layer, module)].astype(np.float64) @ ex.A[(layer, module)].astype(np.float64)
            )
            assert rel(ours, theirs) <= 1e-6


@pytest.mark.parametrize(
    ("dtype", "cast_by"),
    [("f32", "numpy"), ("f16", "torch"), ("f16", "numpy"), ("q8_0", "numpy")],
    ids=["f32", "f16", "f16-numpy", "q8_0"],
)
def test_kept_open_patcher_equals_fresh_writes_query_after_query(
    dtype, cast_by, loaded_bundles, tmp_path, monkeypatch
):
    """One mapping patched for several queries gives, each time, the bytes of a template written with that g.

    f16 patches cast with torch (vectorised) when it is there and with numpy otherwise; both must give the
    bytes numpy writes into a fresh template.
    """
    if cast_by == "numpy":
        monkeypatch.setattr(gguf_adapter, "_torch_views", lambda views, cat: None)
    bundle = loaded_bundles["qwen2"]
    kw = dict(arch="qwen2", n_heads=4, n_kv_heads=2, bundle_id=bundle.bundle_id, dtype=dtype)
    template = write_template(bundle.cat, tmp_path / "t.gguf", **kw)
    patcher = template.open_patcher(template.private_copy(tmp_path / "p.gguf"), bundle.cat)
    try:
        for seed in (3, 4, 3):
            g = random_g(bundle, seed)
            patcher.patch(g)
            direct = write_template(bundle.cat, tmp_path / f"d{seed}.gguf", g=g, **kw)
            assert (tmp_path / "p.gguf").read_bytes() == direct.path.read_bytes()
    finally:
        patcher.close()
    with pytest.raises(BundleError, match="closed"):
        patcher.patch(random_g(bundle, 5))


def test_patcher_refuses_a_template_of_another_shape(loaded_bundles, tiny_models, tmp_path):
    qwen = loaded_bundles["qwen2"]
    rank2 = load_bundle(make_random_bundle(tiny_models["qwen2"].hf_dir, tmp_path / "r2", K=3, r=2))
    template = write_template(
        qwen.cat, tmp_path / "t.gguf", arch="qwen2", n_heads=4, n_kv_heads=2, bundle_id=qwen.bundle_id
    )
    with pytest.raises(BundleError, match="does not match its bundle"):
        template.open_patcher(template.private_copy(tmp_path / "p.gguf"), rank2.cat)


def test_template_rank_is_padded_with_zeros_that_change_nothing(loaded_bundles, tmp_path):
    """K·r = 12 is written as 16 rows of lora_a / columns of lora_b (llama.cpp's fast matmul needs a multiple
    of its vector width); the extra rows and columns are zero, so ΔW read back is B_cat·diag(g)·A_cat."""
    import gguf

    bundle = loaded_bundles["qwen2"]
    rank = bundle.K * bundle.r
    g = random_g(bundle, 7)
    template = write_template(
        bundle.cat,
        tmp_path / "t.gguf",
        arch="qwen2",
        n_heads=4,
        n_kv_heads=2,
        bundle_id="b",
        g=g,
        dtype="f32",
    )
    assert template.rank == rank and gguf_adapter.padded_rank(rank) % gguf_adapter.RANK_ALIGN == 0
    tensors = {t.name: np.asarray(t.data) for t in gguf.GGUFReader(str(template.path)).tensors}
    for (layer, module), slot in template.a_slots.items():
        assert slot.shape[0] == gguf_adapter.padded_rank(rank) > rank
        name = gguf_adapter.mods.gguf_weight_name(layer, module)
        assert not tensors[name + ".lora_a"][rank:].any() and not tensors[name + ".lora_b"][:, rank:].any()
        got = read_adapter_delta(template.path, layer, module)
        np.testing.assert_allclose(got, bundle.cat.delta(g, layer, module), rtol=1e-5, atol=1e-6)


def test_q8_template_pads_the_rank_to_one_block_and_quantizes_both_factors(loaded_bundles, tmp_path):
    """q8_0 stores lora_b in Q8_0 too, with the rank padded to 32 so that one lora_b row is one block (a
    decode step's B·(A x) is then one int8 dot per row); ΔW read back stays B_cat·diag(g)·A_cat to 8 bits."""
    import gguf

    bundle = loaded_bundles["qwen2"]
    rank = bundle.K * bundle.r
    g = random_g(bundle, 7)
    kw = dict(arch="qwen2", n_heads=4, n_kv_heads=2, bundle_id="b", g=g)
    template = write_template(bundle.cat, tmp_path / "t.gguf", dtype="q8_0", **kw)
    assert template.b_dtype == template.dtype == "q8_0"
    assert gguf_adapter.padded_rank(rank, "q8_0") == gguf_adapter.Q8_BLOCK
    types = {t.name: t.tensor_type for t in gguf.GGUFReader(str(template.path)).tensors}
    assert set(types.values()) == {gguf.GGMLQuantizationType.Q8_0}
    for (layer, module), slot in template.a_slots.items():
        assert slot.shape[0] == gguf_adapter.Q8_BLOCK
        exact = bundle.cat.delta(g, layer, module)
        got = read_adapter_delta(template.path, layer, module)
        assert rel(got, exact) < 2e-2
    assert write_template(bundle.cat, tmp_path / "f.gguf", dtype="f16", **kw).b_dtype == "f16"


@pytest.mark.parametrize(("dtype", "tol"), [("f32", 1e-6), ("f16", 2e-3), ("q8_0", 2e-2)])
def test_fused_layout_stores_b_transposed_unpadded_and_patches_like_standard(
    dtype, tol, loaded_bundles, tmp_path
):
    """The fused layout: lora_b as rows of B's columns (ggml [out, r]), the rank unpadded, the layout named in
    the header; the per-query patch writes the same lora_a, so ΔW read back is B_cat·diag(g)·A_cat."""
    import gguf

    bundle = loaded_bundles["qwen2"]
    rank = bundle.K * bundle.r
    g = random_g(bundle, 5)
    kw = dict(arch="qwen2", n_heads=4, n_kv_heads=2, bundle_id=bundle.bundle_id, dtype=dtype)
    template = write_template(bundle.cat, tmp_path / "t.gguf", layout="fused", **kw)
    assert template.layout == "fused" and template.rank == rank
    assert gguf_adapter.padded_rank(rank, dtype, "fused") == rank
    assert {slot.shape[0] for slot in template.a_slots.values()} == {rank}
    tensors = {t.name: t for t in gguf.GGUFReader(str(template.path)).tensors}
    for layer, module in bundle.cat.layer_modules():
        b = tensors[f"{gguf_adapter.mods.gguf_weight_name(layer, module)}.lora_b"]
        assert [int(n) for n in b.shape] == [bundle.cat.B[(layer, module)].shape[0], rank]  # ggml order
    patched = template.private_copy(tmp_path / "p.gguf")
    template.patch(patched, bundle.cat, g)
    direct = write_template(bundle.cat, tmp_path / "d.gguf", layout="fused", g=g, **kw)
    assert patched.read_bytes() == direct.path.read_bytes()
    for layer, module in bundle.cat.layer_modules():
        got = read_adapter_delta(patched, layer, module)
        assert rel(got, bundle.cat.delta(g, layer, module)) <= tol, (layer, module)
    standard = write_template(bundle.cat, tmp_path / "s.gguf", **kw)
    assert standard.layout == "standard" and read_template(standard.path).layout == "standard"


def test_a_template_in_an_unknown_layout_is_refused(loaded_bundles, tmp_path):
    import gguf

    bundle = loaded_bundles["qwen2"]
    path = tmp_path / "odd.gguf"
    writer = gguf.GGUFWriter(str(path), "qwen2")
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf_adapter.BUNDLE_ID_KEY, bundle.bundle_id)
    writer.add_string(gguf_adapter.LAYOUT_KEY, "spiral")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(BundleError, match="layout"):
        read_template(path)
