"""Any OpenAI-compatible chat endpoint through the official ``openai`` SDK (OpenAI, vLLM, Ollama,
llama.cpp server, OpenRouter, …)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .base import ChatRequest, ChatResponse, ProviderFailure, sdk_errors


class OpenAICompatProvider:
    kind = "openai"

    def __init__(self, base_url: str, api_key: str | None) -> None:
        import openai

        self._openai = openai
        self.base_url = base_url
        # local servers take any key; the SDK insists on one
        self._client = openai.OpenAI(api_key=api_key or "no-key", base_url=base_url, max_retries=0)

    def complete(self, request: ChatRequest, timeout_s: float) -> ChatResponse:
        kwargs: dict[str, Any] = {
            "model": request.model,
            "messages": [{"role": r, "content": c} for r, c in request.messages],
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "timeout": timeout_s,
        }
        if request.stop:
            kwargs["stop"] = list(request.stop)
        if request.seed is not None:
            kwargs["seed"] = request.seed
        with sdk_errors(self._openai, self.base_url, timeout_s):
            resp = self._client.chat.completions.create(**kwargs)
        return self._response(resp, lambda choice: choice.message.content)

    def _response(self, resp: Any, text_of: Callable[[Any], str | None]) -> ChatResponse:
        """One reply of either endpoint as a :class:`ChatResponse`; a reply without choices is malformed."""
        try:
            choice = resp.choices[0]
            usage = resp.usage
            return ChatResponse(
                text=text_of(choice) or "",
                tokens_in=int(getattr(usage, "prompt_tokens", 0) or 0),
                tokens_out=int(getattr(usage, "completion_tokens", 0) or 0),
                model=str(getattr(resp, "model", "") or ""),
                finish_reason=str(choice.finish_reason or ""),
                fingerprint=str(getattr(resp, "system_fingerprint", "") or ""),
            )
        except (AttributeError, IndexError, TypeError) as exc:
            raise ProviderFailure("malformed", f"malformed reply from {self.base_url}: no choices") from exc


class OpenAICompletionProvider(OpenAICompatProvider):
    """``/v1/completions`` for base models: the request's last message is the raw prompt."""

    kind = "openai_completion"

    def complete(self, request: ChatRequest, timeout_s: float) -> ChatResponse:
        kwargs: dict[str, Any] = {
            "model": request.model,
            "prompt": request.messages[-1][1],
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "timeout": timeout_s,
        }
        if request.stop:
            kwargs["stop"] = list(request.stop)[:4]  # the OpenAI API takes at most 4 stop strings
        if request.seed is not None:
            kwargs["seed"] = request.seed
        with sdk_errors(self._openai, self.base_url, timeout_s):
            resp = self._client.completions.create(**kwargs)
        return self._response(resp, lambda choice: choice.text)
