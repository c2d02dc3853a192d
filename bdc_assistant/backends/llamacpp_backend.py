"""The CPU backend: a GGUF base model on llama.cpp (llama-cpp-python 0.3.x), streamed token by token.

Why a hand-written token loop instead of ``create_completion``: the cancel flag must be checked once per
token (Esc in the TUI), stop strings must cut at the same character on both backends, and the solver
needs the raw token stream for timing. The base is always memory-mapped: adapters are attached later
through the low-level API by ``disen.llamacpp_adapter`` (never ``lora_path=``, which disables mmap).
llama.cpp's own log lines are captured in a small ring buffer instead of going to stderr; the last
ones are quoted when a model fails to load.
"""

from __future__ import annotations

import ctypes
import os
from collections import deque
from collections.abc import Generator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import BackendUnavailable, ModelError
from ..models.resolve import check_gguf
from .base import CancelToken, GenerationParams, one_line
from .streaming import StopStream

if TYPE_CHECKING:
    from ..disen.compose import Customization

_LOG_LINES: deque[str] = deque(maxlen=64)
_LOG_CALLBACK: Any = None  # keep the ctypes callback alive for the life of the process


def import_llama_cpp() -> Any:
    """Import llama_cpp, or say in one sentence that the llama.cpp backend is not installed."""
    try:
        import llama_cpp
    except ImportError as exc:
        raise BackendUnavailable(
            "The llama.cpp backend needs llama-cpp-python, which is not installed; run `make install`."
        ) from exc
    except OSError as exc:  # the shared library exists but does not load on this CPU / libc
        raise BackendUnavailable(
            f"llama-cpp-python is installed but its native library fails to load: {one_line(exc)}."
        ) from exc
    _quiet_logs(llama_cpp)
    return llama_cpp


def _quiet_logs(llama_cpp: Any) -> None:
    global _LOG_CALLBACK
    if _LOG_CALLBACK is not None:
        return

    @llama_cpp.llama_log_callback
    def _capture(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        _LOG_LINES.append(text.decode("utf-8", errors="replace").rstrip())

    _LOG_CALLBACK = _capture
    llama_cpp.llama_log_set(_capture, ctypes.c_void_p(0))


def recent_log(n: int = 8) -> list[str]:
    """The last llama.cpp log lines (for error messages and ``bdc doctor``)."""
    return [line for line in list(_LOG_LINES)[-n:] if line]


def _load_failure_reason() -> str:
    """The most specific recent llama.cpp complaint ("error loading model: ..." beats "failed to load")."""
    lines = [line.strip() for line in _LOG_LINES if line.strip()]
    for needle in ("error loading model:", "error", "failed", "invalid"):
        for line in reversed(lines):
            if needle in line.lower():
                return line.split(needle, 1)[-1].strip(" :") if needle.endswith(":") else line
    return "see `bdc doctor`"


def _take(steps: Generator[int, None, None], n: int) -> list[int]:
    out: list[int] = []
    if n > 0:
        for tok in steps:
            out.append(tok)
            if len(out) >= n:
                break
    steps.close()
    return out


def resolve_threads(threads: int) -> int:
    """``0`` means every core this process may run on."""
    if threads > 0:
        return threads
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


class LlamaCppGenerator:
    """One GGUF model loaded in llama.cpp, implementing :class:`backends.base.Generator`."""

    name = "llamacpp"

    def __init__(
        self,
        gguf: Path,
        *,
        n_ctx: int = 4096,
        threads: int = 0,
        seed: int = 0,
        role: str = "base",
        chat_template: str | None = None,
        kv_f32: bool = False,
    ) -> None:
        """``kv_f32`` keeps the KV cache in f32 (default f16): only parity tests need that precision."""
        path = check_gguf(Path(gguf).expanduser(), role)
        llama_cpp = import_llama_cpp()
        self._lib = llama_cpp
        self.model_id = path.name
        self.path = path
        self.threads = resolve_threads(threads)
        self._slot: Any = None
        _LOG_LINES.clear()  # so a load failure quotes this load's complaint, not an older one
        try:
            self.llama = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=n_ctx,
                n_threads=self.threads,
                n_threads_batch=self.threads,
                seed=seed,
                use_mmap=True,
                logits_all=False,
                verbose=False,
                **({"type_k": llama_cpp.GGML_TYPE_F32, "type_v": llama_cpp.GGML_TYPE_F32} if kv_f32 else {}),
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelError(
                f"llama.cpp could not load the {role} model {path} ({_load_failure_reason()})."
            ) from exc
        self.n_ctx = self.llama.n_ctx()
        self.n_vocab = self.llama.n_vocab()
        self._vocab = self.llama._model.vocab
        self._chat_template = chat_template or self.llama.metadata.get("tokenizer.chat_template")

    # ---- tokens ---------------------------------------------------------------------------------------

    def tokenize(self, text: str, *, add_bos: bool = True, special: bool = False) -> list[int]:
        """Token ids as llama.cpp sees them (BOS only where the model's vocab asks for one)."""
        return list(self.llama.tokenize(text.encode("utf-8"), add_bos=add_bos, special=special))

    def detokenize(self, token_ids: Sequence[int]) -> str:
        return self.llama.detokenize(list(token_ids)).decode("utf-8", errors="replace")

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize(text))

    def is_eog(self, token: int) -> bool:
        return bool(self._lib.llama_vocab_is_eog(self._vocab, token))

    # ---- raw model access (parity tests, DisenLoRA) --------------------------------------------------

    def _clear_state(self) -> None:
        self.llama.reset()
        mem = self._lib.llama_get_memory(self.llama._ctx.ctx)
        if mem is not None:
            self._lib.llama_memory_clear(mem, True)

    def eval_logits(self, token_ids: Sequence[int]) -> np.ndarray:
        """float32 [n_tokens, vocab]: the logits at every position for ``token_ids``, from a cleared state."""
        ids = [int(t) for t in token_ids]
        if not ids:
            return np.zeros((0, self.n_vocab), dtype=np.float32)
        if len(ids) > self.n_ctx:
            raise ModelError(f"{len(ids)} tokens do not fit the context window of {self.n_ctx}.")
        self._clear_state()
        out = np.empty((len(ids), self.n_vocab), dtype=np.float32)
        batch = self.llama._batch
        step = self.llama.n_batch
        try:
            for start in range(0, len(ids), step):
                chunk = ids[start : start + step]
                batch.set_batch(batch=chunk, n_past=start, logits_all=True)
                self.llama._ctx.decode(batch)
                raw = np.ctypeslib.as_array(self.llama._ctx.get_logits(), shape=(len(chunk) * self.n_vocab,))
                out[start : start + len(chunk)] = raw.reshape(len(chunk), self.n_vocab)
        finally:
            self._clear_state()  # the KV now holds these ids; the high-level bookkeeping does not know
        return out

    def iter_greedy(self, token_ids: Sequence[int]) -> Generator[int, None, None]:
        """Endless greedy token ids after ``token_ids`` from a cleared state (close it when done)."""
        self._clear_state()
        tokens = self.llama.generate(list(token_ids), temp=0.0, top_k=1, repeat_penalty=1.0, reset=True)
        try:
            for tok in tokens:
                yield int(tok)
        finally:
            tokens.close()

    def greedy_tokens(self, token_ids: Sequence[int], n: int) -> list[int]:
        """The next ``n`` greedy token ids after ``token_ids`` (no stop at end-of-generation tokens)."""
        return _take(self.iter_greedy(token_ids), n)

    # ---- generation -----------------------------------------------------------------------------------

    def generate_ids(
        self, prompt_ids: Sequence[int], params: GenerationParams, cancel: CancelToken | None = None
    ) -> Iterator[str]:
        """Stream text for already-tokenized input (the chat path tokenizes with special tokens)."""
        ids = list(prompt_ids)
        if len(ids) >= self.n_ctx:
            raise ModelError(
                f"The prompt has {len(ids)} tokens, more than the context window of {self.n_ctx}."
            )
        budget = min(params.max_tokens, self.n_ctx - len(ids))
        if budget <= 0 or (cancel is not None and cancel.cancelled):
            return
        greedy = params.temperature <= 0.0
        self.llama.set_seed(params.seed)
        stream = StopStream(params.stop)
        produced = 0
        tokens = self.llama.generate(
            ids,
            temp=0.0 if greedy else params.temperature,
            top_k=1 if greedy else 0,
            top_p=1.0 if greedy else params.top_p,
            min_p=0.0,
            typical_p=1.0,
            repeat_penalty=1.0,
            reset=True,
        )
        try:
            for tok in tokens:
                if cancel is not None and cancel.cancelled:
                    break
                if self.is_eog(tok):
                    break
                produced += 1
                piece = stream.feed(self._lib_piece(tok))
                if piece:
                    yield piece
                if stream.stopped or produced >= budget:
                    break
            tail = stream.finish()
            if tail:
                yield tail
        finally:
            tokens.close()

    def _lib_piece(self, tok: int) -> bytes:
        return bytes(self.llama._model.detokenize([tok], special=False))

    def generate(
        self, prompt: str, params: GenerationParams, cancel: CancelToken | None = None
    ) -> Iterator[str]:
        """Raw completion of ``prompt`` (base models such as the embedded gemma-3-270m)."""
        yield from self.generate_ids(self.tokenize(prompt), params, cancel)

    @property
    def has_chat_template(self) -> bool:
        """Whether :meth:`chat` can work (``models.chat_template = "auto"`` picks chat vs completion by it)."""
        return bool(self._chat_template)

    def render_chat(self, messages: Sequence[Mapping[str, str]]) -> str:
        """The prompt text for ``messages`` using the GGUF's own chat template."""
        if not self._chat_template:
            raise ModelError(f"The model {self.model_id} has no chat template; use raw completion instead.")
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        bos = self.llama.detokenize([self.llama.token_bos()], special=True).decode("utf-8", "replace")
        eos = self.llama.detokenize([self.llama.token_eos()], special=True).decode("utf-8", "replace")
        fmt = Jinja2ChatFormatter(template=self._chat_template, bos_token=bos, eos_token=eos)
        try:
            chat: Any = [dict(m) for m in messages]
            return fmt(messages=chat).prompt
        except Exception as exc:  # jinja errors from a user-supplied template
            raise ModelError(
                f"The chat template of {self.model_id} failed to render: {one_line(exc)}."
            ) from exc

    def chat(
        self,
        messages: Sequence[Mapping[str, str]],
        params: GenerationParams,
        cancel: CancelToken | None = None,
    ) -> Iterator[str]:
        """Answer a chat (instruction-tuned models such as SmolLM2); stops at the template's end-of-turn."""
        prompt = self.render_chat(messages)
        bos_text = self.llama.detokenize([self.llama.token_bos()], special=True).decode("utf-8", "replace")
        add_bos = not (bos_text and prompt.startswith(bos_text))
        ids = self.tokenize(prompt, add_bos=add_bos, special=True)
        yield from self.generate_ids(ids, params, cancel)

    # ---- customization --------------------------------------------------------------------------------

    def set_customization(self, customization: Customization | None) -> None:
        """Attach (or remove) a per-query DisenLoRA adapter; the KV cache is dropped only when weights change.

        Why keep it otherwise: the next prompt usually shares the chat template and system prompt with the
        last one, and llama-cpp-python reuses that prefix's KV only if nothing reset it. The plain base asked
        to stay plain, or an adapter asked to stay (same bundle, same gates: a retry of the same problem),
        computes exactly what the cache holds.
        """
        if customization is None:
            if self._slot is None or not self._slot.active:
                return
            self._slot.clear()
        else:
            if self._slot is None:
                from ..disen.llamacpp_adapter import LlamaCppAdapterSlot

                self._slot = LlamaCppAdapterSlot(self.llama)
            if self._slot.holds(customization):
                return
            self._slot.apply(customization)
        self.llama.reset()

    def forget_prompt_cache(self) -> None:
        """Empty the KV cache: the next prompt is evaluated whole, as on a fresh model."""
        self.llama.reset()

    def close(self) -> None:
        slot, self._slot = self._slot, None
        if slot is not None and hasattr(slot, "close"):
            slot.close()
        llama = getattr(self, "llama", None)
        if llama is not None:
            llama.close()
