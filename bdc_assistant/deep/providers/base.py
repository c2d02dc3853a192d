"""The provider port: one chat completion in, text and token usage out.

Providers do no retrying of their own (the SDKs' built-in retries are switched off); they translate every
failure into :class:`ProviderFailure` with a ``retryable`` flag, and :mod:`.retry` decides what to do.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class ChatRequest:
    messages: tuple[tuple[str, str], ...]  # (role, content); a "system" message first is allowed
    model: str
    max_tokens: int = 1024
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None

    def canonical(self) -> dict[str, Any]:
        """What the response depends on (used for the cache key; never includes credentials)."""
        return {
            "messages": [list(m) for m in self.messages],
            "model": self.model,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "stop": list(self.stop),
            "seed": self.seed,
        }


@dataclass(frozen=True)
class ChatResponse:
    text: str
    tokens_in: int
    tokens_out: int
    model: str = ""
    finish_reason: str = ""
    fingerprint: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class ProviderFailure(Exception):
    """A failed request, classified: ``kind`` in rate_limit, server, timeout, connection, malformed
    (retryable) or auth, bad_request, not_found (fail fast)."""

    RETRYABLE = frozenset({"rate_limit", "server", "timeout", "connection", "malformed"})

    def __init__(
        self, kind: str, message: str, *, status: int | None = None, retry_after: float | None = None
    ):
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.kind in self.RETRYABLE


class Provider(Protocol):
    kind: str  # "openai" | "anthropic"
    base_url: str

    def complete(self, request: ChatRequest, timeout_s: float) -> ChatResponse: ...


def classify_status(status: int | None) -> str:
    if status is None:
        return "connection"
    if status == 429:
        return "rate_limit"
    if status in (401, 403):
        return "auth"
    if status == 404:
        return "not_found"
    if status == 408:
        return "timeout"
    if status >= 500:
        return "server"
    return "bad_request"


def retry_after_seconds(headers: Any) -> float | None:
    try:
        value = headers.get("retry-after") if headers is not None else None
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


@contextmanager
def sdk_errors(sdk: Any, base_url: str, timeout_s: float) -> Iterator[None]:
    """Translate a failure of one ``openai`` or ``anthropic`` SDK call (``sdk`` is the module: both name
    their exceptions alike) into a classified :class:`ProviderFailure`."""
    try:
        yield
    except sdk.APITimeoutError as exc:  # a subclass of APIConnectionError: first
        raise ProviderFailure("timeout", f"request timed out after {timeout_s:g} s") from exc
    except sdk.APIStatusError as exc:
        raise ProviderFailure(
            classify_status(exc.status_code),
            f"HTTP {exc.status_code} from {base_url}: {short(exc.message)}",
            status=exc.status_code,
            retry_after=retry_after_seconds(exc.response.headers),
        ) from exc
    except sdk.APIResponseValidationError as exc:
        raise ProviderFailure("malformed", f"malformed reply from {base_url}") from exc
    except sdk.APIConnectionError as exc:
        raise ProviderFailure("connection", f"cannot reach {base_url}: {short(str(exc))}") from exc
    except (json.JSONDecodeError, ValueError) as exc:
        raise ProviderFailure("malformed", f"malformed reply from {base_url}: {short(str(exc))}") from exc


def short(text: str, n: int = 200) -> str:
    """One line of at most ``n`` characters, for quoting a server's message."""
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"
