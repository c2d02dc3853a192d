"""Customizer (text → g), hook mode for the trainer, and the torch slot's refusals."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from bdc_assistant.disen.compose import Customization
from bdc_assistant.disen.runtime import Customizer
from bdc_assistant.disen.torch_apply import GateHooks, TorchMergeSlot
from bdc_assistant.errors import BundleError

from .conftest import load_torch, random_g, token_ids, torch_logits


class HashEncoder:
    """A scripted encoder: a deterministic unit vector per text (no model download)."""

    def __init__(self, dim: int = 384) -> None:
        self.dim = dim
        self.calls = 0

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        out = []
        for t in texts:
            seed = int.from_bytes(hashlib.sha256(t.encode()).digest()[:8], "little")
            v = np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)
            out.append(v / np.linalg.norm(v))
        return np.stack(out)


def test_customizer_gates_differ_between_queries_and_repeat_for_the_same_query(loaded_bundles):
    bundle = loaded_bundles["gemma3"]
    enc = HashEncoder()
    cz = Customizer(bundle, enc)
    a = cz.for_query("reverse a linked list")
    b = cz.for_query("count primes below n")
    a2 = cz.for_query("reverse a linked list")
    assert a.g.shape == (bundle.n_layers, bundle.K * bundle.r)
    assert np.array_equal(a.g, a2.g)
    assert np.abs(a.g - b.g).max() > 0.05
    assert a.g.min() > 0 and a.g.max() < 1  # sigmoid normalisation
    means = a.gates.expert_means()
    assert len(means) == 3 and all(0 < m < 1 for m in means)
    assert np.allclose(means, a.g.reshape(bundle.n_layers, 3, bundle.r).mean(axis=(0, 2)), atol=1e-6)
    assert a.gates.cluster_names == ("random-0", "random-1", "random-2")
    e = enc.embed(["reverse a linked list"])[0]
    assert np.allclose(a.gates.cluster_similarity, bundle.centroids @ e, atol=1e-5)
    assert a.embed_ms >= 0 and a.hypernet_ms >= 0
    with pytest.raises(ValueError):
        a.g[0, 0] = 3.0  # the logged customization cannot be mutated after the fact


def test_customizer_refuses_wrong_encoder_dim(loaded_bundles):
    with pytest.raises(BundleError, match="768-dim embeddings but the bundle"):
        Customizer(loaded_bundles["llama"], HashEncoder(dim=768)).for_query("x")


def test_hook_mode_gradients_reach_only_the_gates(tiny_models, loaded_bundles):
    import torch

    bundle = loaded_bundles["llama"]
    model = load_torch(tiny_models["llama"].hf_dir)
    for p in model.parameters():
        p.requires_grad_(False)
    ids = token_ids(tiny_models["llama"].vocab_size, 12, seed=4)
    g = torch.tensor(np.stack([random_g(bundle, 1), random_g(bundle, 2)]), requires_grad=True)
    with GateHooks(model, bundle) as hooks:
        hooks.set_gates(g)
        out = model(torch.tensor([ids, ids]), labels=torch.tensor([ids, ids]))
        out.loss.backward()
        assert g.grad is not None and torch.all(g.grad.abs().sum(dim=(1, 2)) > 0)
        assert not any(p.requires_grad for p in model.parameters())
        with pytest.raises(BundleError, match="expected"):
            hooks.set_gates(torch.zeros(2, bundle.n_layers, 5))
        hooks.set_gates(None)
        with torch.no_grad():
            plain_hooked = model(torch.tensor([ids])).logits
    plain = torch_logits(model, ids)
    assert np.array_equal(plain_hooked[0].double().numpy(), plain)  # removed / None = plain base


def test_merge_slot_swaps_are_exact_and_clear_restores(tiny_models, loaded_bundles):
    bundle = loaded_bundles["llama"]
    model = load_torch(tiny_models["llama"].hf_dir)
    ids = token_ids(tiny_models["llama"].vocab_size, 16, seed=5)
    base = torch_logits(model, ids)
    slot = TorchMergeSlot(model)
    ca, cb = (
        Customization.from_g(bundle, random_g(bundle, 1)),
        Customization.from_g(bundle, random_g(bundle, 2)),
    )
    slot.apply(cb)
    only_b = torch_logits(model, ids)
    for _ in range(20):
        slot.apply(ca)
        slot.apply(cb)
    assert np.array_equal(torch_logits(model, ids), only_b)  # from pristine W0 every time: no drift
    slot.clear()
    assert np.array_equal(torch_logits(model, ids), base)


def test_merge_slot_refuses_bundle_for_other_model(tiny_models, loaded_bundles):
    model = load_torch(tiny_models["llama"].hf_dir)
    slot = TorchMergeSlot(model)
    with pytest.raises(BundleError, match="made for base"):
        slot.apply(Customization.from_g(loaded_bundles["gemma3"], random_g(loaded_bundles["gemma3"], 1)))


def test_llamacpp_slot_refuses_bundle_for_other_arch(tiny_models, loaded_bundles):
    from bdc_assistant.disen.llamacpp_adapter import LlamaCppAdapterSlot

    from .conftest import open_llama

    llm = open_llama(tiny_models["llama"].gguf_path)
    try:
        slot = LlamaCppAdapterSlot(llm)
        with pytest.raises(BundleError, match="gemma3"):
            slot.apply(Customization.from_g(loaded_bundles["gemma3"], random_g(loaded_bundles["gemma3"], 1)))
        assert slot.live_handles == 0
    finally:
        llm.close()


@pytest.mark.parametrize("other", ["gemma3", "llama"])
def test_slots_on_qwen2_refuse_another_bases_bundle_naming_both(other, tiny_models, tmp_path):
    """A bundle for another base is refused on both backends with one sentence that names both bases."""
    from bdc_assistant.disen.bundle import load_bundle
    from bdc_assistant.disen.llamacpp_adapter import LlamaCppAdapterSlot
    from bdc_assistant.disen.random_bundle import make_random_bundle

    from .conftest import open_llama

    base_name = f"tiny-{other}-base"
    bundle = load_bundle(make_random_bundle(tiny_models[other].hf_dir, tmp_path / "b", name=base_name))
    foreign = Customization.from_g(bundle, random_g(bundle, 1))
    with pytest.raises(BundleError) as info:
        TorchMergeSlot(load_torch(tiny_models["qwen2"].hf_dir)).apply(foreign)
    msg = str(info.value)
    assert f"'{base_name}'" in msg and "'hf' (2 layers)" in msg and "\n" not in msg, msg
    llm = open_llama(tiny_models["qwen2"].gguf_path)
    try:
        slot = LlamaCppAdapterSlot(llm)
        with pytest.raises(BundleError) as info:
            slot.apply(foreign)
        msg = str(info.value)
        assert f"'{base_name}'" in msg and "'tiny-qwen2.gguf'" in msg and "qwen2" in msg, msg
        assert slot.live_handles == 0
    finally:
        llm.close()


def test_detect_api_prefers_current_names_and_falls_back():
    from types import SimpleNamespace

    from bdc_assistant.disen.llamacpp_adapter import detect_api
    from bdc_assistant.errors import BackendUnavailable

    calls: list[str] = []
    old = SimpleNamespace(
        llama_adapter_lora_init=lambda m, p: calls.append("init") or 1,
        llama_adapter_lora_free=lambda h: calls.append("free"),
        llama_set_adapter_lora=lambda c, h, s: calls.append("set") or 0,
        llama_clear_adapter_lora=lambda c: calls.append("clear"),
    )
    api = detect_api(old)
    assert api.flavour == "set_adapter_lora"
    api.activate("ctx", 1)
    assert calls == ["clear", "set"]
    import llama_cpp

    assert detect_api(llama_cpp).flavour == "set_adapters_lora"
    with pytest.raises(BackendUnavailable):
        detect_api(SimpleNamespace())
