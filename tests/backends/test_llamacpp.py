"""The llama.cpp backend on real tiny GGUFs: streaming, stops, cancel, sampling, bad files, adapters."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from bdc_assistant.backends.base import CancelToken, GenerationParams, Generator
from bdc_assistant.backends.llamacpp_backend import LlamaCppGenerator, resolve_threads
from bdc_assistant.errors import BackendUnavailable, BdcError, ModelError
from bdc_assistant.models.tiny import TinyModel

from .conftest import truncated_copy


def _greedy_text(gen: Any, prompt: str, n: int) -> str:
    """Reference text: detokenize the greedy ids one token at a time (what streaming must reproduce)."""
    ids = gen.greedy_tokens(gen.tokenize(prompt), n)
    out = b""
    for t in ids:
        if gen.is_eog(t):
            break
        out += gen.llama._model.detokenize([t], special=False)
    return out.decode("utf-8", errors="replace")


def test_is_a_generator(llama_gens: dict[str, Any]) -> None:
    gen = llama_gens["llama"]
    assert isinstance(gen, Generator)
    assert gen.name == "llamacpp"
    assert gen.model_id == "tiny-llama.gguf"
    assert gen.threads == 1  # tiny models: one thread is fastest on a busy 2-core machine
    assert gen.llama.context_params.n_threads == 1


def test_generate_streams_greedy_and_honours_max_tokens(llama_gens: dict[str, Any]) -> None:
    gen = llama_gens["llama"]
    pieces = list(gen.generate("def add(a, b):", GenerationParams(max_tokens=12)))
    assert len(pieces) >= 2  # streamed, not one blob
    assert "".join(pieces) == _greedy_text(gen, "def add(a, b):", 12)
    assert list(gen.generate("def add(a, b):", GenerationParams(max_tokens=12))) == pieces  # deterministic
    assert len(list(gen.generate("x", GenerationParams(max_tokens=1)))) <= 1


def test_stop_string_cuts_text(llama_gens: dict[str, Any]) -> None:
    gen = llama_gens["llama"]
    full = "".join(gen.generate("Hello, world! 123", GenerationParams(max_tokens=16)))
    assert len(full) >= 6
    stop = full[3:5]
    cut = "".join(gen.generate("Hello, world! 123", GenerationParams(max_tokens=16, stop=(stop,))))
    assert cut == full[: full.index(stop)]
    assert stop not in cut


def test_cancel_is_checked_per_token(llama_gens: dict[str, Any]) -> None:
    gen = llama_gens["llama"]
    token = CancelToken()
    pieces = []
    for piece in gen.generate("x", GenerationParams(max_tokens=50), token):
        pieces.append(piece)
        token.cancel()
    assert len(pieces) == 1
    token2 = CancelToken()
    token2.cancel()
    assert list(gen.generate("x", GenerationParams(max_tokens=50), token2)) == []


def test_seeded_sampling_is_reproducible(llama_gens: dict[str, Any]) -> None:
    gen = llama_gens["gemma3"]
    p = GenerationParams(max_tokens=24, temperature=1.5, top_p=1.0, seed=7)
    ids = gen.tokenize("abc")

    def sample(params: GenerationParams) -> list[int]:
        gen.llama.set_seed(params.seed)
        out = []
        for t in gen.llama.generate(ids, temp=params.temperature, top_k=0, top_p=1.0, min_p=0.0):
            out.append(t)
            if len(out) == 24:
                break
        return out

    a = "".join(gen.generate("abc", p))
    assert a == "".join(gen.generate("abc", p))
    assert sample(p) == sample(p)
    others = {
        "".join(gen.generate("abc", GenerationParams(max_tokens=24, temperature=1.5, seed=s)))
        for s in range(4)
    }
    assert len(others) > 1  # the seed matters
    assert a != "".join(gen.generate("abc", GenerationParams(max_tokens=24)))  # and differs from greedy


def test_tokenize_and_eval_logits_shape(llama_gens: dict[str, Any]) -> None:
    gen = llama_gens["gemma3"]
    ids = gen.tokenize("hi there")
    assert ids[0] == 1  # BOS from the vocab's add_bos flag
    assert gen.count_tokens("hi there") == len(ids)
    logits = gen.eval_logits(ids)
    assert logits.shape == (len(ids), gen.n_vocab) and logits.dtype == np.float32
    # State is reset first: a second call, after unrelated generation, gives the same numbers.
    list(gen.generate("something else", GenerationParams(max_tokens=5)))
    np.testing.assert_array_equal(gen.eval_logits(ids), logits)
    assert gen.eval_logits([]).shape == (0, gen.n_vocab)


def test_prompt_longer_than_context_is_refused(tiny_models: dict[str, TinyModel]) -> None:
    gen = LlamaCppGenerator(tiny_models["llama"].gguf_path, n_ctx=256, threads=1)
    try:
        with pytest.raises(ModelError, match="context window"):
            list(gen.generate("a" * 400, GenerationParams()))
    finally:
        gen.close()


def test_chat_without_template_is_one_sentence(llama_gens: dict[str, Any]) -> None:
    assert not llama_gens["llama"].has_chat_template
    with pytest.raises(ModelError, match="no chat template"):
        list(llama_gens["llama"].chat([{"role": "user", "content": "hi"}], GenerationParams(max_tokens=4)))


def test_chat_uses_the_gguf_template(tiny_models: dict[str, TinyModel]) -> None:
    template = (
        "{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}assistant:{% endif %}"
    )
    gen = LlamaCppGenerator(tiny_models["llama"].gguf_path, n_ctx=256, threads=1, chat_template=template)
    try:
        assert gen.has_chat_template
        msgs = [{"role": "user", "content": "hi"}]
        prompt = gen.render_chat(msgs)
        assert prompt == "<s>user: hi\nassistant:"
        ids = gen.tokenize(prompt, add_bos=False, special=True)
        assert ids.count(1) == 1  # "<s>" parsed as the BOS control token, and not added twice
        expected = "".join(gen.generate_ids(ids, GenerationParams(max_tokens=6)))
        assert "".join(gen.chat(msgs, GenerationParams(max_tokens=6))) == expected
    finally:
        gen.close()


def test_missing_gguf(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        LlamaCppGenerator(tmp_path / "nope.gguf")


def test_corrupt_gguf(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"NOTAGGUF" * 100)
    with pytest.raises(ModelError, match="not a GGUF"):
        LlamaCppGenerator(bad)


def test_truncated_gguf_is_one_sentence(tiny_models: dict[str, TinyModel], tmp_path: Path) -> None:
    cut = truncated_copy(tiny_models["llama"].gguf_path, tmp_path / "cut.gguf", 0.6)
    with pytest.raises(ModelError) as info:
        LlamaCppGenerator(cut, threads=1)
    msg = str(info.value)
    print(msg)
    assert "could not load" in msg and "\n" not in msg


def test_missing_llama_cpp_dependency(
    tiny_models: dict[str, TinyModel], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # `import llama_cpp` now raises ImportError
    with pytest.raises(BackendUnavailable, match="llama-cpp-python") as info:
        LlamaCppGenerator(tiny_models["llama"].gguf_path)
    assert isinstance(info.value, BdcError)


def test_threads_zero_means_all_cores() -> None:
    import os

    assert resolve_threads(0) == len(os.sched_getaffinity(0))
    assert resolve_threads(3) == 3


class _RecordingSlot:
    instances: ClassVar[list[_RecordingSlot]] = []

    def __init__(self, llama: Any) -> None:
        self.llama = llama
        self.calls: list[Any] = []
        self.live: Any = None
        _RecordingSlot.instances.append(self)

    @property
    def active(self) -> bool:
        return self.live is not None

    def holds(self, customization: Any) -> bool:
        return self.live == customization

    def apply(self, customization: Any) -> None:
        self.calls.append(("apply", customization))
        self.live = customization

    def clear(self) -> None:
        self.calls.append(("clear", None))
        self.live = None


def test_set_customization_delegates_to_adapter_slot(
    tiny_models: dict[str, TinyModel], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = types.ModuleType("bdc_assistant.disen.llamacpp_adapter")
    fake.LlamaCppAdapterSlot = _RecordingSlot  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "bdc_assistant.disen.llamacpp_adapter", fake)
    _RecordingSlot.instances.clear()
    gen = LlamaCppGenerator(tiny_models["llama"].gguf_path, n_ctx=128, threads=1)
    try:
        gen.set_customization(None)  # nothing to clear yet: no slot is created
        assert _RecordingSlot.instances == []
        list(gen.generate("abc", GenerationParams(max_tokens=3)))
        kept = gen.llama.n_tokens
        assert kept > 0
        gen.set_customization(None)  # still the plain base: the cached prompt prefix stays usable
        assert gen.llama.n_tokens == kept
        gen.set_customization("c1")
        assert gen.llama.n_tokens == 0  # reset: no stale KV prefix from the previous weights
        list(gen.generate("abc", GenerationParams(max_tokens=3)))
        gen.set_customization("c1")  # the same adapter again (a retry): neither reloaded nor reset
        assert gen.llama.n_tokens > 0
        gen.set_customization("c2")
        assert gen.llama.n_tokens == 0
        list(gen.generate("abc", GenerationParams(max_tokens=3)))
        gen.set_customization(None)
        assert gen.llama.n_tokens == 0  # back to the plain base: the adapter's KV is stale
        list(gen.generate("abc", GenerationParams(max_tokens=3)))
        gen.forget_prompt_cache()  # evaluation: every problem from an empty cache
        assert gen.llama.n_tokens == 0
        gen.set_customization(None)
        (slot,) = _RecordingSlot.instances
        assert slot.llama is gen.llama
        assert slot.calls == [("apply", "c1"), ("apply", "c2"), ("clear", None)]
    finally:
        gen.close()


def test_llama_cpp_log_noise_is_captured(
    tiny_models: dict[str, TinyModel], capfd: pytest.CaptureFixture[str]
) -> None:
    from bdc_assistant.backends.llamacpp_backend import recent_log

    gen = LlamaCppGenerator(tiny_models["gemma3"].gguf_path, n_ctx=128, threads=1)
    list(gen.generate("abc", GenerationParams(max_tokens=2)))
    gen.close()
    err = capfd.readouterr().err
    assert "llama_model_loader" not in err and "llama_kv_cache" not in err
    assert recent_log()  # but kept for error messages / doctor


@pytest.mark.slow
def test_chat_with_embedded_smollm2() -> None:
    """The real small agent: its GGUF chat template (ChatML) renders, and the turn ends at <|im_end|>."""
    from bdc_assistant.models import embedded

    path = embedded.small_gguf_path()  # a missing embedded model is a failure, not a skip
    gen = LlamaCppGenerator(path, n_ctx=512, threads=2, role="small")
    try:
        assert gen.has_chat_template
        msgs = [{"role": "user", "content": "What is 2+2? Answer with one number."}]
        assert gen.render_chat(msgs).endswith("<|im_start|>assistant\n")
        answer = "".join(gen.chat(msgs, GenerationParams(max_tokens=48)))
        print(repr(answer))
        assert "4" in answer
        assert "<|im_end|>" not in answer and "<|im_start|>" not in answer
    finally:
        gen.close()
