"""The GPU (and CPU-fallback) backend: an HF causal LM on torch/transformers, decoded with a manual loop.

Why a manual loop instead of ``model.generate`` + ``TextIteratorStreamer``: it checks the cancel flag
once per token without a helper thread, uses the KV cache directly, and makes greedy decoding the plain
argmax that the parity tests compare against llama.cpp. DisenLoRA customizations are merged into the
weights per query by ``disen.torch_apply`` (zero per-token overhead).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import BackendUnavailable, ModelError
from .base import CancelToken, GenerationParams, one_line
from .streaming import StopStream

if TYPE_CHECKING:
    from ..disen.compose import Customization


def import_torch() -> Any:
    try:
        import torch
        import transformers  # noqa: F401
    except ImportError as exc:
        raise BackendUnavailable(
            "The torch backend needs torch and transformers, which are not installed; run `make install`."
        ) from exc
    return torch


def pick_device(device: str) -> str:
    """``auto`` → cuda when available else cpu; an explicit ``cuda`` without CUDA is refused."""
    from .gpu import cuda_available  # the one GPU probe, so every part gives the same answer

    has_cuda = cuda_available()
    if device == "cuda" and not has_cuda:
        raise BackendUnavailable('CUDA was requested (backend.device = "cuda") but no CUDA GPU is available.')
    if device == "auto":
        return "cuda" if has_cuda else "cpu"
    return device


class TorchGenerator:
    """One HF model directory loaded with transformers, implementing :class:`backends.base.Generator`."""

    name = "torch"

    def __init__(
        self, hf_dir: Path, *, device: str = "auto", dtype: str | None = None, seed: int = 0
    ) -> None:
        torch = import_torch()
        from transformers import AutoModelForCausalLM, AutoTokenizer

        hf_dir = Path(hf_dir).expanduser()
        if not (hf_dir / "config.json").is_file():
            raise ModelError(f"The HF model directory {hf_dir} does not exist or has no config.json.")
        self._torch = torch
        self.device = pick_device(device)
        if dtype is None:
            dtype = "bfloat16" if self.device.startswith("cuda") else "float32"
        self.dtype = getattr(torch, dtype)
        self.model_id = hf_dir.name
        self.hf_dir = hf_dir
        self.seed = seed
        self._slot: Any = None
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(hf_dir)
            model: Any = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=self.dtype)
            self.model: Any = model.to(self.device)
        except Exception as exc:  # safetensors, json and transformers each raise their own types
            raise ModelError(f"transformers could not load the model in {hf_dir}: {one_line(exc)}.") from exc
        self.model.eval()
        self.n_vocab = int(self.model.config.vocab_size)
        eos = self.model.config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos]) if eos is not None else set()
        if self.tokenizer.eos_token_id is not None:
            eos_ids.add(int(self.tokenizer.eos_token_id))
        self._eos = frozenset(int(e) for e in eos_ids)
        self._piece_bytes = token_bytes_fn(self.tokenizer)

    # ---- tokens ---------------------------------------------------------------------------------------

    def tokenize(self, text: str, *, add_bos: bool = True) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=add_bos)["input_ids"])

    def detokenize(self, token_ids: Sequence[int]) -> str:
        return str(self.tokenizer.decode(list(token_ids), skip_special_tokens=True))

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize(text))

    def is_eog(self, token: int) -> bool:
        return token in self._eos

    # ---- raw model access ----------------------------------------------------------------------------

    def _ids(self, token_ids: Sequence[int]) -> Any:
        return self._torch.tensor([list(token_ids)], dtype=self._torch.long, device=self.device)

    def eval_logits(self, token_ids: Sequence[int]) -> np.ndarray:
        """float32 [n_tokens, vocab] logits for ``token_ids`` (no cache carried between calls)."""
        if not token_ids:
            return np.zeros((0, self.n_vocab), dtype=np.float32)
        with self._torch.inference_mode():
            out = self.model(input_ids=self._ids(token_ids), use_cache=False)
        return out.logits[0].float().cpu().numpy()

    def _decode_steps(self, token_ids: Sequence[int], pick: Any) -> Generator[int, None, None]:
        """Prefill once, then one cached forward per token; ``pick(logits_row) -> int`` chooses."""
        torch = self._torch
        with torch.inference_mode():
            out = self.model(input_ids=self._ids(token_ids), use_cache=True)
            while True:
                tok = int(pick(out.logits[0, -1].float()))
                yield tok
                nxt = torch.tensor([[tok]], dtype=torch.long, device=self.device)
                out = self.model(input_ids=nxt, use_cache=True, **_cache_kwargs(out))

    def iter_greedy(self, token_ids: Sequence[int]) -> Generator[int, None, None]:
        """Endless argmax token ids after ``token_ids`` (close it when done)."""
        return self._decode_steps(token_ids, lambda row: row.argmax())

    def greedy_tokens(self, token_ids: Sequence[int], n: int) -> list[int]:
        """The next ``n`` argmax token ids after ``token_ids`` (no stop at EOS)."""
        out: list[int] = []
        if n <= 0:
            return out
        steps = self.iter_greedy(token_ids)
        for tok in steps:
            out.append(tok)
            if len(out) >= n:
                break
        steps.close()
        return out

    def _sampler(self, params: GenerationParams) -> Any:
        torch = self._torch
        if params.temperature <= 0.0:
            return lambda row: row.argmax()
        gen = torch.Generator(device="cpu").manual_seed(params.seed)

        def pick(row: Any) -> int:
            probs = torch.softmax(row.cpu() / params.temperature, dim=-1)
            if params.top_p < 1.0:
                sorted_p, order = torch.sort(probs, descending=True)
                keep = torch.cumsum(sorted_p, dim=-1) - sorted_p < params.top_p
                probs = torch.zeros_like(probs).scatter(0, order[keep], sorted_p[keep])
            return int(torch.multinomial(probs, 1, generator=gen))

        return pick

    # ---- generation -----------------------------------------------------------------------------------

    def generate_ids(
        self, prompt_ids: Sequence[int], params: GenerationParams, cancel: CancelToken | None = None
    ) -> Iterator[str]:
        ids = list(prompt_ids)
        if not ids:
            raise ModelError("Cannot generate from an empty prompt.")
        if cancel is not None and cancel.cancelled:
            return
        stream = StopStream(params.stop)
        diff = None if self._piece_bytes is not None else _DiffDecoder(self.tokenizer, ids[-1:])
        produced = 0
        steps = self._decode_steps(ids, self._sampler(params))
        try:
            for tok in steps:
                if cancel is not None and cancel.cancelled:
                    break
                if self.is_eog(tok):
                    break
                produced += 1
                raw = self._piece_bytes(tok) if self._piece_bytes is not None else diff.push(tok)  # type: ignore[union-attr]
                piece = stream.feed(raw)
                if piece:
                    yield piece
                if stream.stopped or produced >= params.max_tokens:
                    break
            if diff is not None and not stream.stopped:
                piece = stream.feed(diff.flush())
                if piece:
                    yield piece
            tail = stream.finish()
            if tail:
                yield tail
        finally:
            steps.close()

    def generate(
        self, prompt: str, params: GenerationParams, cancel: CancelToken | None = None
    ) -> Iterator[str]:
        yield from self.generate_ids(self.tokenize(prompt), params, cancel)

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def render_chat(self, messages: Sequence[Mapping[str, str]]) -> str:
        if not getattr(self.tokenizer, "chat_template", None):
            raise ModelError(f"The model {self.model_id} has no chat template; use raw completion instead.")
        return str(
            self.tokenizer.apply_chat_template(
                [dict(m) for m in messages], add_generation_prompt=True, tokenize=False
            )
        )

    def chat(
        self,
        messages: Sequence[Mapping[str, str]],
        params: GenerationParams,
        cancel: CancelToken | None = None,
    ) -> Iterator[str]:
        prompt = self.render_chat(messages)
        bos = self.tokenizer.bos_token
        add_bos = not (bos and prompt.startswith(bos))
        yield from self.generate_ids(self.tokenize(prompt, add_bos=add_bos), params, cancel)

    # ---- customization --------------------------------------------------------------------------------

    def set_customization(self, customization: Customization | None) -> None:
        """Merge (or un-merge) a per-query DisenLoRA customization into the targeted weights."""
        if customization is None:
            if self._slot is not None:
                self._slot.clear()
            return
        if self._slot is None:
            from ..disen.torch_apply import TorchMergeSlot

            self._slot = TorchMergeSlot(self.model)
        self._slot.apply(customization)

    def close(self) -> None:
        slot, self._slot = self._slot, None
        if slot is not None:
            slot.clear()
        self.model = None
        if self.device.startswith("cuda"):
            self._torch.cuda.empty_cache()


def _cache_kwargs(out: Any) -> dict[str, Any]:
    """The KV cache of ``out`` as the next forward's keyword: transformers 5.2x names it ``cache``, earlier
    releases (a CUDA image's preinstalled 5.17, 4.x) ``past_key_values``."""
    cache = getattr(out, "cache", None)
    if cache is not None:
        return {"cache": cache}
    return {"past_key_values": out.past_key_values}


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte <-> printable-character table used by byte-level BPE vocabularies."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs), strict=True))


def token_bytes_fn(tokenizer: Any) -> Callable[[int], bytes] | None:
    """Map one token id to its exact bytes, as llama.cpp's ``token_to_piece`` does.

    Why bytes and not ``decode``: decoding a growing id list re-groups byte-fallback tokens, so invalid
    or split UTF-8 renders differently from a per-token stream. Per-token bytes fed through one
    incremental UTF-8 decoder give the same text on both backends. ``None`` when the tokenizer is of a
    kind we do not recognise (the caller then diffs successive ``decode`` results).
    """
    try:
        spec = json.loads(tokenizer.backend_tokenizer.to_str()).get("decoder") or {}
    except (AttributeError, ValueError, TypeError):
        return None
    kinds = {d.get("type") for d in spec.get("decoders", [spec]) if isinstance(d, dict)}
    special = frozenset(int(i) for i in tokenizer.all_special_ids)
    convert = tokenizer.convert_ids_to_tokens
    if "ByteLevel" in kinds:
        table = {c: b for b, c in _bytes_to_unicode().items()}

        def byte_level(tok: int) -> bytes:
            if tok in special:
                return b""
            text = convert(tok) or ""
            if all(ch in table for ch in text):
                return bytes(table[ch] for ch in text)
            return text.encode("utf-8")  # an added (non-byte-level) token

        return byte_level
    if kinds & {"ByteFallback", "Metaspace"} or "▁" in json.dumps(spec):

        def sentencepiece(tok: int) -> bytes:
            if tok in special:
                return b""
            text = convert(tok) or ""
            if _BYTE_PIECE.fullmatch(text):
                return bytes([int(text[3:5], 16)])
            return text.replace("▁", " ").encode("utf-8")

        return sentencepiece
    return None


_BYTE_PIECE = re.compile(r"<0x[0-9A-Fa-f]{2}>")


class _DiffDecoder:
    """Fallback: decode ``anchor + generated`` and return the new suffix (anchor keeps leading spaces)."""

    def __init__(self, tokenizer: Any, anchor: list[int]) -> None:
        self._tok = tokenizer
        self._anchor = anchor
        self._anchor_len = len(tokenizer.decode(anchor, skip_special_tokens=True))
        self._ids: list[int] = []
        self._shown = ""

    def _text(self) -> str:
        return str(self._tok.decode(self._anchor + self._ids, skip_special_tokens=True))[self._anchor_len :]

    def push(self, tok: int) -> str:
        self._ids.append(tok)
        text = self._text()
        if text.endswith("\ufffd"):
            return ""  # a multi-byte character is still incomplete
        new, self._shown = text[len(self._shown) :], text
        return new

    def flush(self) -> str:
        text = self._text()
        return text[len(self._shown) :] if len(text) > len(self._shown) else ""
