"""bench/agent_server.py: a llama-cpp-python prompt cache whose saved states keep one logits row, restored
into a live model on a tiny qwen2 GGUF — same greedy answers as without the cache, a real prefix hit, and
an entry that costs its KV bytes, not n_batch × n_vocab floats."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from bdc_assistant.models.tiny import TinyModel

BENCH = Path(__file__).resolve().parents[2] / "bench" / "agent_server.py"


def _module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("bench_agent_server", BENCH)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _greedy(llm, prompt: list[int]) -> list[int]:  # type: ignore[no-untyped-def]
    out = llm.create_completion(prompt, max_tokens=6, temperature=0.0, top_k=1)
    return llm.tokenize(out["choices"][0]["text"].encode(), add_bos=False, special=True)


def test_prefix_cache_with_one_logits_row(tiny_models: dict[str, TinyModel], monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from llama_cpp import Llama, LlamaRAMCache

    gguf = str(tiny_models["qwen2"].gguf_path)
    shared = list(range(20, 80))
    first, other, second = [*shared, 5, 6, 7], list(range(100, 160)), [*shared, 9, 10]

    plain = Llama(gguf, n_ctx=256, n_threads=1, verbose=False, seed=0)
    expected = [_greedy(plain, p) for p in (first, other, second)]
    plain.close()

    monkeypatch.setattr(Llama, "save_state", _module()._save_state_last_logits)
    cached = Llama(gguf, n_ctx=256, n_threads=1, verbose=False, seed=0)
    cache = LlamaRAMCache(capacity_bytes=64 << 20)
    cached.set_cache(cache)
    assert [_greedy(cached, p) for p in (first, other, second)] == expected
    # the third prompt found the first one's state (60 shared tokens), not the second's
    hit = cache[second]
    assert Llama.longest_token_prefix(hit.input_ids.tolist(), second) >= len(shared)
    for state in cache.cache_state.values():
        assert state.scores.shape == (1, cached.n_vocab())  # one row, not n_batch rows
    cached.close()
