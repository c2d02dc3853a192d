"""Gates written into the loaded adapter's own tensors (llamacpp_live) compute exactly what reloading the
patched file computes, for every architecture and storage; anything that does not check out falls back to
reloading, never to a wrong adapter."""

from __future__ import annotations

import numpy as np
import pytest

from bdc_assistant.disen import llamacpp_live
from bdc_assistant.disen.compose import Customization
from bdc_assistant.disen.llamacpp_adapter import LlamaCppAdapterSlot

from .conftest import llama_logits, open_llama, random_g, token_ids


@pytest.mark.parametrize(
    ("arch", "dtype"),
    [("llama", "f32"), ("gemma3", "f16"), ("qwen2", "f16"), ("qwen2", "q8_0"), ("llama", "q8_0")],
)
def test_in_place_gates_equal_a_fresh_load(tiny_models, loaded_bundles, arch, dtype):
    tm, bundle = tiny_models[arch], loaded_bundles[arch]
    ids = token_ids(tm.vocab_size, 12, seed=4)
    first, second = (Customization.from_g(bundle, random_g(bundle, s)) for s in (1, 2))
    llm = open_llama(tm.gguf_path)
    try:
        slot = LlamaCppAdapterSlot(llm, dtype=dtype)  # type: ignore[arg-type]
        slot.apply(first)
        after_first = llama_logits(llm, ids)
        slot.apply(second)  # written into the live tensors
        assert slot.loads == 1 and slot.in_place_patches == 1 and slot.last_ms["init"] == 0.0
        in_place = llama_logits(llm, ids)
        slot.close()

        fresh = LlamaCppAdapterSlot(llm, dtype=dtype, in_place=False)  # type: ignore[arg-type]
        fresh.apply(second)
        want = llama_logits(llm, ids)
        fresh.close()
    finally:
        llm.close()
    assert np.array_equal(in_place, want)  # the same bytes in the same tensors: bit for bit
    assert np.abs(after_first - want).max() > 1e-2  # a write that missed the live tensors could not pass


def test_clear_keeps_the_handle_and_the_next_query_reactivates_it(tiny_models, loaded_bundles):
    tm, bundle = tiny_models["qwen2"], loaded_bundles["qwen2"]
    ids = token_ids(tm.vocab_size, 12, seed=5)
    custom = Customization.from_g(bundle, random_g(bundle, 3))
    llm = open_llama(tm.gguf_path)
    try:
        plain = llama_logits(llm, ids)
        slot = LlamaCppAdapterSlot(llm)
        slot.apply(Customization.from_g(bundle, random_g(bundle, 9)))
        slot.clear()
        assert not slot.active and slot.live_handles == 1
        assert np.array_equal(llama_logits(llm, ids), plain)  # inactive means the plain base
        slot.apply(custom)
        assert slot.active and slot.loads == 1
        customized = llama_logits(llm, ids)
        slot.close()
        assert slot.live_handles == 0
    finally:
        llm.close()
    assert np.abs(customized - plain).max() > 0.1


def test_unverifiable_live_tensors_fall_back_to_reloading(tiny_models, loaded_bundles, monkeypatch):
    tm, bundle = tiny_models["qwen2"], loaded_bundles["qwen2"]
    seen: list[object] = []

    def mismatched(model, adapter, template, loaded):
        tampered = np.array(loaded)  # bytes that are not what llama.cpp loaded
        tampered[next(iter(template.a_slots.values())).offset] ^= 0xFF
        result = real(model, adapter, template, tampered)
        seen.append(result)
        return result

    real = llamacpp_live.find_live_lora_a
    monkeypatch.setattr(llamacpp_live, "find_live_lora_a", mismatched)
    llm = open_llama(tm.gguf_path)
    try:
        slot = LlamaCppAdapterSlot(llm)
        for seed in range(3):
            slot.apply(Customization.from_g(bundle, random_g(bundle, seed)))
        assert seen == [None, None, None]
        assert slot.loads == 3 and slot.in_place_patches == 0 and slot.live_handles == 1
        slot.close()
    finally:
        llm.close()


def test_a_symbol_missing_from_the_build_means_no_live_tensors(monkeypatch):
    monkeypatch.setattr(llamacpp_live, "ADAPTER_GET_WEIGHT", "no_such_symbol_in_libllama")
    assert llamacpp_live._lib() is None


def test_customizing_a_closed_model_is_one_sentence_not_a_write_into_freed_memory(
    tiny_models, loaded_bundles
):
    from bdc_assistant.errors import ModelError

    tm, bundle = tiny_models["qwen2"], loaded_bundles["qwen2"]
    llm = open_llama(tm.gguf_path)
    slot = LlamaCppAdapterSlot(llm)
    slot.apply(Customization.from_g(bundle, random_g(bundle, 1)))
    assert slot._live is not None
    llm.close()  # frees the model and the adapter the live views point into
    with pytest.raises(ModelError, match="was closed"):
        slot.apply(Customization.from_g(bundle, random_g(bundle, 2)))
    slot.close()
