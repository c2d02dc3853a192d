"""Anthropic's Messages API through the official ``anthropic`` SDK (system prompt as the ``system``
field, text blocks joined)."""

from __future__ import annotations

from typing import Any

from .base import ChatRequest, ChatResponse, ProviderFailure, sdk_errors

DEFAULT_URL = "https://api.anthropic.com"


class AnthropicProvider:
    kind = "anthropic"

    def __init__(self, base_url: str, api_key: str | None) -> None:
        import anthropic

        self._anthropic = anthropic
        self.base_url = base_url or DEFAULT_URL
        self._client = anthropic.Anthropic(api_key=api_key or "no-key", base_url=self.base_url, max_retries=0)

    def complete(self, request: ChatRequest, timeout_s: float) -> ChatResponse:
        system = "\n\n".join(c for r, c in request.messages if r == "system")
        messages = [{"role": r, "content": c} for r, c in request.messages if r != "system"]
        kwargs: dict[str, Any] = {
            "model": request.model,
            "messages": messages,
            "max_tokens": request.max_tokens,
            # newer SDKs dropped the typed argument; the API still takes it in the body
            "extra_body": {"temperature": request.temperature},
            "timeout": timeout_s,
        }
        if system:
            kwargs["system"] = system
        if request.stop:
            kwargs["stop_sequences"] = list(request.stop)
        with sdk_errors(self._anthropic, self.base_url, timeout_s):  # 529 "overloaded" is a 5xx: retried
            resp = self._client.messages.create(**kwargs)
        try:
            text = "".join(getattr(b, "text", "") for b in resp.content if getattr(b, "type", "") == "text")
            usage = resp.usage
            return ChatResponse(
                text=text,
                tokens_in=int(getattr(usage, "input_tokens", 0) or 0),
                tokens_out=int(getattr(usage, "output_tokens", 0) or 0),
                model=str(getattr(resp, "model", "") or ""),
                finish_reason=str(getattr(resp, "stop_reason", "") or ""),
            )
        except (AttributeError, TypeError) as exc:
            raise ProviderFailure("malformed", f"malformed reply from {self.base_url}: no content") from exc
