"""The torch backend on the tiny HF models: streaming, stops, cancel, sampling, bad input, merge slot."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bdc_assistant.backends.base import CancelToken, GenerationParams, Generator
from bdc_assistant.backends.torch_backend import TorchGenerator
from bdc_assistant.errors import BackendUnavailable, ModelError
from bdc_assistant.models.tiny import TinyModel


def test_is_a_generator(torch_gens: dict[str, Any]) -> None:
    gen = torch_gens["gemma3"]
    assert isinstance(gen, Generator)
    assert gen.name == "torch" and gen.device == "cpu"
    assert gen.model.dtype.is_floating_point


def test_generate_matches_greedy_ids_and_max_tokens(torch_gens: dict[str, Any]) -> None:
    gen = torch_gens["llama"]
    ids = gen.tokenize("Hello")
    greedy = gen.greedy_tokens(ids, 10)
    pieces = list(gen.generate("Hello", GenerationParams(max_tokens=10)))
    assert len(pieces) >= 2
    raw = b"".join(gen._piece_bytes(t) for t in greedy)
    assert "".join(pieces) == raw.decode("utf-8", errors="replace")
    assert len(list(gen.generate("Hello", GenerationParams(max_tokens=1)))) <= 1


def test_token_bytes_for_byte_fallback_vocab(torch_gens: dict[str, Any]) -> None:
    gen = torch_gens["llama"]
    to_bytes = gen._piece_bytes
    assert to_bytes is not None
    assert to_bytes(3 + 0xE2) == b"\xe2"  # "<0xE2>"
    assert to_bytes(gen.tokenizer.convert_tokens_to_ids("▁")) == b" "
    assert to_bytes(1) == b""  # BOS is special
    # "é" is two byte-fallback tokens in this vocab; joined bytes decode to one character.
    ids = gen.tokenize("é", add_bos=False)
    assert len(ids) == 3  # "▁", 0xC3, 0xA9
    assert b"".join(to_bytes(t) for t in ids).decode("utf-8") == " é"


def test_stop_string_and_cancel(torch_gens: dict[str, Any]) -> None:
    gen = torch_gens["llama"]
    full = "".join(gen.generate("Hello, world! 123", GenerationParams(max_tokens=16)))
    stop = full[2:4]
    cut = "".join(gen.generate("Hello, world! 123", GenerationParams(max_tokens=16, stop=(stop,))))
    assert cut == full[: full.index(stop)]

    token = CancelToken()
    pieces = []
    for piece in gen.generate("x", GenerationParams(max_tokens=50), token):
        pieces.append(piece)
        token.cancel()
    assert len(pieces) == 1
    assert list(gen.generate("x", GenerationParams(max_tokens=50), token)) == []


def test_seeded_sampling(torch_gens: dict[str, Any]) -> None:
    gen = torch_gens["gemma3"]
    p = GenerationParams(max_tokens=20, temperature=1.5, top_p=0.9, seed=11)
    a = "".join(gen.generate("abc", p))
    assert a == "".join(gen.generate("abc", p))
    seeds = {
        "".join(gen.generate("abc", GenerationParams(max_tokens=20, temperature=1.5, seed=s)))
        for s in range(4)
    }
    assert len(seeds) > 1


def test_eval_logits_and_tokens(torch_gens: dict[str, Any]) -> None:
    gen = torch_gens["gemma3"]
    ids = gen.tokenize("hi there")
    assert ids[0] == 1 and gen.count_tokens("hi there") == len(ids)
    logits = gen.eval_logits(ids)
    assert logits.shape == (len(ids), gen.n_vocab) and logits.dtype == np.float32
    assert gen.greedy_tokens(ids, 1) == [int(logits[-1].argmax())]
    assert gen.greedy_tokens(ids, 0) == []


def test_chat_template_from_tokenizer(tiny_models: dict[str, TinyModel]) -> None:
    gen = TorchGenerator(tiny_models["llama"].hf_dir, device="cpu")
    try:
        with pytest.raises(ModelError, match="no chat template"):
            list(gen.chat([{"role": "user", "content": "hi"}], GenerationParams(max_tokens=3)))
        gen.tokenizer.chat_template = (
            "{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
            "{% if add_generation_prompt %}assistant:{% endif %}"
        )
        msgs = [{"role": "user", "content": "hi"}]
        assert gen.render_chat(msgs) == "<s>user: hi\nassistant:"
        ids = gen.tokenize(gen.render_chat(msgs), add_bos=False)
        assert ids.count(1) == 1
        expected = "".join(gen.generate_ids(ids, GenerationParams(max_tokens=5)))
        assert "".join(gen.chat(msgs, GenerationParams(max_tokens=5))) == expected
    finally:
        gen.close()


def test_missing_hf_dir(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"does not exist or has no config\.json"):
        TorchGenerator(tmp_path / "nope", device="cpu")


def test_corrupt_weights_are_one_sentence(tiny_models: dict[str, TinyModel], tmp_path: Path) -> None:
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(tiny_models["llama"].hf_dir, bad)
    weights = bad / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ModelError, match="could not load"):
        TorchGenerator(bad, device="cpu")


def test_cuda_requested_but_absent(
    tiny_models: dict[str, TinyModel], monkeypatch: pytest.MonkeyPatch
) -> None:
    from bdc_assistant.backends import gpu

    monkeypatch.setattr(gpu, "cuda_available", lambda: False)
    with pytest.raises(BackendUnavailable, match="CUDA was requested"):
        TorchGenerator(tiny_models["llama"].hf_dir, device="cuda")


def test_missing_torch_dependency(tiny_models: dict[str, TinyModel], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(BackendUnavailable, match="torch and transformers"):
        TorchGenerator(tiny_models["llama"].hf_dir, device="cpu")


def test_set_customization_delegates_to_merge_slot(
    tiny_models: dict[str, TinyModel], monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[Any] = []

    class Slot:
        def __init__(self, model: Any) -> None:
            self.model, self.calls = model, []
            made.append(self)

        def apply(self, c: Any) -> None:
            self.calls.append(("apply", c))

        def clear(self) -> None:
            self.calls.append(("clear", None))

    fake = types.ModuleType("bdc_assistant.disen.torch_apply")
    fake.TorchMergeSlot = Slot  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "bdc_assistant.disen.torch_apply", fake)
    gen = TorchGenerator(tiny_models["llama"].hf_dir, device="cpu")
    model = gen.model
    gen.set_customization(None)
    assert made == []
    gen.set_customization("c1")
    gen.set_customization(None)
    gen.close()
    (slot,) = made
    assert slot.model is model
    assert slot.calls == [("apply", "c1"), ("clear", None), ("clear", None)]


@pytest.mark.slow
def test_token_bytes_for_byte_level_bpe_vocab() -> None:
    """SmolLM2's GPT-2-style byte-level vocab (read from its GGUF): per-token bytes rebuild any text."""
    from transformers import AutoTokenizer

    from bdc_assistant.backends.torch_backend import token_bytes_fn
    from bdc_assistant.models import embedded

    path = embedded.small_gguf_path()  # a missing embedded model is a failure, not a skip
    tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    to_bytes = token_bytes_fn(tok)
    assert to_bytes is not None
    text = "def café(x):\n    return '✓' + x  # 日本"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert b"".join(to_bytes(i) for i in ids).decode("utf-8") == text
    assert all(to_bytes(i) == b"" for i in tok.all_special_ids)


def test_cache_keyword_follows_the_installed_transformers():
    from types import SimpleNamespace

    from bdc_assistant.backends.torch_backend import _cache_kwargs

    kv = object()
    assert _cache_kwargs(SimpleNamespace(cache=kv, past_key_values=None)) == {"cache": kv}
    # transformers before 5.2x (e.g. a CUDA image's 5.17) returns and takes past_key_values
    assert _cache_kwargs(SimpleNamespace(past_key_values=kv)) == {"past_key_values": kv}
