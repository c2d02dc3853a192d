"""Hand-written, scripted test doubles shared by the suites."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from bdc_assistant.backends.base import CancelToken, GenerationParams, truncate_at_stop


@dataclass
class FakeGenerator:
    """Returns scripted completions, one per `generate` call, streamed a few characters at a time.

    It honours stop strings, max_tokens (one "token" = one chunk) and the cancel flag like a real backend.
    """

    script: list[str]
    name: str = "fake"
    model_id: str = "fake-model"
    chunk: int = 3
    calls: list[tuple[str, GenerationParams]] = field(default_factory=list)
    customizations: list[Any] = field(default_factory=list)
    cancel_after: int | None = None  # cancel the token after this many chunks (simulates Esc)
    closed: bool = False

    def generate(
        self, prompt: str, params: GenerationParams, cancel: CancelToken | None = None
    ) -> Iterator[str]:
        self.calls.append((prompt, params))
        text = self.script[len(self.calls) - 1] if len(self.calls) <= len(self.script) else ""
        text, _ = truncate_at_stop(text, params.stop)
        for emitted, i in enumerate(range(0, len(text), self.chunk), start=1):
            if cancel is not None and cancel.cancelled:
                return
            if emitted > params.max_tokens:
                return
            yield text[i : i + self.chunk]
            if self.cancel_after is not None and emitted >= self.cancel_after and cancel is not None:
                cancel.cancel()

    def count_tokens(self, text: str) -> int:
        return max(1, len(text) // self.chunk)

    def set_customization(self, customization: Any) -> None:
        self.customizations.append(customization)

    def close(self) -> None:
        self.closed = True
