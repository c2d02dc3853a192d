"""The port every generation backend implements (llama.cpp, torch/transformers, test fakes)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ..types import CancelToken

if TYPE_CHECKING:
    from ..disen.compose import Customization


# CancelToken lives in types.py (the TUI and deep mode need it without importing backends); re-exported here
__all__ = ["CancelToken", "GenerationParams", "Generator", "one_line", "truncate_at_stop"]


@dataclass(frozen=True)
class GenerationParams:
    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 0.95
    stop: tuple[str, ...] = ()
    seed: int = 0


@runtime_checkable
class Generator(Protocol):
    """Streams text for a prompt. One instance holds one loaded base model."""

    name: str  # "llamacpp" | "torch" | "fake"
    model_id: str  # human-readable model identity (file name or HF dir)

    def generate(
        self, prompt: str, params: GenerationParams, cancel: CancelToken | None = None
    ) -> Iterator[str]:
        """Yield decoded text pieces as they are produced; stop at a stop string, max_tokens or cancel."""
        ...

    def count_tokens(self, text: str) -> int: ...

    def set_customization(self, customization: Customization | None) -> None:
        """Apply a per-query DisenLoRA customization (``None`` = plain base model)."""
        ...

    def close(self) -> None: ...


def truncate_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """Cut ``text`` at the first stop string; return (text, hit)."""
    cut = len(text)
    for stop in stops:
        if stop:
            i = text.find(stop)
            if i != -1:
                cut = min(cut, i)
    return text[:cut], cut != len(text)


def one_line(exc: BaseException, limit: int = 240) -> str:
    """A library exception as one short line, for quoting inside a one-sentence BdcError message."""
    text = " ".join(str(exc).split()).rstrip(".") or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"
