"""``python -m llama_cpp.server`` for deep-bench agents, with a prompt-prefix cache that fits in memory.

Why: in ``bdc deep-bench --methods all`` most of a local agent's time goes into evaluating prompts, not into
writing answers (1.5B on 2 cores: 215 s of prompt evaluation against 141 s of decoding in one sitting), and the
prompts repeat: every method opens with the same problem statement, and Reflexion, LDB and the tree searches
send a conversation again with a few new turns at its end. The server only reuses the *previous* request's
prefix, which the next method's different prompt has already overwritten. llama-cpp-python's ``--cache true``
keeps the KV state of many past requests and restores the longest matching prefix, but each saved state also
copies the whole ``n_batch × n_vocab`` logits matrix (311 MB for Qwen2.5's vocabulary), which ``--cache_size``
does not count, so a 2 GB cache of 5 MB states would hold hundreds of entries and ~100 GB of logits.

Here a saved state keeps only the last logits row. That loses nothing: a restored state is marked for
re-evaluation, so llama-cpp-python decodes at least the last prompt token again before it samples, and the
logits it samples from are always fresh. ``--cache_size`` then bounds the real memory. A restored prefix gives
the same answers up to the floating-point differences of evaluating a prompt in other batch sizes (the plain
server's own prefix reuse has the same property).

    python bench/agent_server.py --model M.gguf --model_alias qwen1.5b --chat_format chatml --n_ctx 4096 \\
        --n_threads 2 --port 18115 --cache true --cache_size 2147483648

Any ``llama_cpp.server`` argument works; without ``--cache true`` this is the plain server.
"""

from __future__ import annotations

import ctypes
import sys


def _save_state_last_logits(self):  # type: ignore[no-untyped-def]
    """``Llama.save_state`` minus the full logits matrix: only the last row is kept (see the module doc)."""
    import llama_cpp
    from llama_cpp.llama import LlamaState

    size = llama_cpp.llama_state_get_size(self._ctx.ctx)
    buf = (ctypes.c_uint8 * int(size))()
    n = int(llama_cpp.llama_state_get_data(self._ctx.ctx, buf, size))
    if n > int(size):
        raise RuntimeError("Failed to copy llama state data")
    return LlamaState(
        scores=self._scores[-1:, :].copy(),
        input_ids=self.input_ids.copy(),
        n_tokens=self.n_tokens,
        llama_state=ctypes.string_at(buf, n),
        llama_state_size=n,
        seed=self._seed,
    )


def main() -> None:
    import llama_cpp.llama
    from llama_cpp.server.__main__ import main as serve

    llama_cpp.llama.Llama.save_state = _save_state_last_logits  # type: ignore[method-assign]
    sys.argv[0] = "llama_cpp.server"
    serve()


if __name__ == "__main__":
    main()
