"""Scripted doubles for the serve/acp tests: generators that answer by stage or run until cancelled, a
customizer whose gates depend on the text, and a real uvicorn server in a thread."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from bdc_assistant.backends.base import CancelToken, GenerationParams, truncate_at_stop
from bdc_assistant.types import Gates

THOUGHT = " Add the two numbers.\n2. Return the sum.\n\n"
CODE = "def add(a, b):\n    return a + b\n```\n"


@dataclass
class StageGenerator:
    """Answers the plan prompt with THOUGHT and the code prompt (which ends in a python fence) with CODE,
    one "token" per ``chunk`` characters, honouring stop strings, max_tokens and the cancel flag."""

    name: str = "fake"
    model_id: str = "fake-model"
    chunk: int = 4
    delay_s: float = 0.0
    calls: list[tuple[str, GenerationParams]] = field(default_factory=list)
    customizations: list[Any] = field(default_factory=list)

    def generate(
        self, prompt: str, params: GenerationParams, cancel: CancelToken | None = None
    ) -> Iterator[str]:
        self.calls.append((prompt, params))
        text = CODE if prompt.rstrip().endswith("```python") else THOUGHT
        if not prompt.rstrip().endswith(("```python", "1.")):
            text = " and then some raw completion text"  # /v1/completions: any other prompt
        text, _ = truncate_at_stop(text, params.stop)
        for n, i in enumerate(range(0, len(text), self.chunk), start=1):
            if (cancel is not None and cancel.cancelled) or n > params.max_tokens:
                return
            if self.delay_s:
                time.sleep(self.delay_s)
            yield text[i : i + self.chunk]

    def count_tokens(self, text: str) -> int:
        return max(1, len(text) // self.chunk)

    def set_customization(self, customization: Any) -> None:
        self.customizations.append(customization)

    def close(self) -> None:
        pass


@dataclass
class EndlessGenerator(StageGenerator):
    """Yields "x " every ``delay_s`` until cancelled or max_tokens; records when it really stopped."""

    delay_s: float = 0.02
    running: bool = False
    stopped_at: float = 0.0
    produced: int = 0

    def generate(
        self, prompt: str, params: GenerationParams, cancel: CancelToken | None = None
    ) -> Iterator[str]:
        self.calls.append((prompt, params))
        self.running = True
        try:
            for _ in range(params.max_tokens):
                if cancel is not None and cancel.cancelled:
                    return
                time.sleep(self.delay_s)
                self.produced += 1
                yield "x "
        finally:
            self.running = False
            self.stopped_at = time.monotonic()


class TextCustomizer:
    """Gates derived from a hash of the text: different problems get different gates, the same problem the
    same ones (L=2 layers, K=2 experts, r=2)."""

    name = "fake-bundle"

    def for_query(self, text: str) -> Any:
        digest = hashlib.sha256(text.encode()).digest()
        values = tuple(tuple(digest[i * 4 + j] / 255 for j in range(4)) for i in range(2))
        gates = Gates(
            values, n_experts=2, rank=2, cluster_similarity=(0.5, 0.25), cluster_names=("io", "math")
        )
        return SimpleNamespace(gates=gates)


def make_solver(generator: Any, customizer: Any | None = None, *, note: str = "") -> Any:
    from bdc_assistant.config import load_settings
    from bdc_assistant.solver.session import Solver

    settings = load_settings()
    return Solver(
        settings,
        generator,
        "completion",
        customizer,
        bundle_name="fake-bundle" if customizer is not None else None,
        bundle_note=note,
    )


class ThreadServer:
    """The real app on a real uvicorn, in a thread, on a free loopback port."""

    def __init__(self, state: Any) -> None:
        import uvicorn

        from bdc_assistant.serve.app import build_app
        from bdc_assistant.serve.server import bind_socket

        self.state = state
        self.sock = bind_socket("127.0.0.1", 0)
        self.port = self.sock.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            build_app(state), log_level="warning", lifespan="off", timeout_graceful_shutdown=1
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(5)
        self.sock.close()
