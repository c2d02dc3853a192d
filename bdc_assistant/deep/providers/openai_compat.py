"""Any OpenAI-compatible chat endpoint through the official ``openai`` SDK (OpenAI, vLLM, Ollama,
llama.cpp server, OpenRouter, …)."""

from __future__ import annotations

import json
from typing import Any

from .base import ChatRequest, ChatResponse, ProviderFailure, classify_status, retry_after_seconds


class OpenAICompatProvider:
    kind = "openai"

    def __init__(self, base_url: str, api_key: str | None) -> None:
        import openai

        self._openai = openai
        self.base_url = base_url
        # local servers take any key; the SDK insists on one
        self._client = openai.OpenAI(api_key=api_key or "no-key", base_url=base_url, max_retries=0)

    def complete(self, request: ChatRequest, timeout_s: float) -> ChatResponse:
        openai = self._openai
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
        try:
            resp = self._client.chat.completions.create(**kwargs)
        except openai.APITimeoutError as exc:
            raise ProviderFailure("timeout", f"request timed out after {timeout_s:g} s") from exc
        except openai.APIStatusError as exc:
            kind = classify_status(exc.status_code)
            raise ProviderFailure(
                kind,
                f"HTTP {exc.status_code} from {self.base_url}: {_short(exc.message)}",
                status=exc.status_code,
                retry_after=retry_after_seconds(getattr(exc.response, "headers", None)),
            ) from exc
        except openai.APIResponseValidationError as exc:
            raise ProviderFailure("malformed", f"malformed reply from {self.base_url}") from exc
        except openai.APIConnectionError as exc:
            raise ProviderFailure("connection", f"cannot reach {self.base_url}: {_short(str(exc))}") from exc
        except (json.JSONDecodeError, ValueError) as exc:
            raise ProviderFailure(
                "malformed", f"malformed reply from {self.base_url}: {_short(str(exc))}"
            ) from exc
        try:
            choice = resp.choices[0]
            text = choice.message.content or ""
            usage = resp.usage
            return ChatResponse(
                text=text,
                tokens_in=int(getattr(usage, "prompt_tokens", 0) or 0),
                tokens_out=int(getattr(usage, "completion_tokens", 0) or 0),
                model=str(getattr(resp, "model", "") or ""),
                finish_reason=str(choice.finish_reason or ""),
                fingerprint=str(getattr(resp, "system_fingerprint", "") or ""),
            )
        except (AttributeError, IndexError, TypeError) as exc:
            raise ProviderFailure("malformed", f"malformed reply from {self.base_url}: no choices") from exc


def _short(text: str, n: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


class OpenAICompletionProvider(OpenAICompatProvider):
    """``/v1/completions`` for base models: the request's last message is the raw prompt."""

    kind = "openai_completion"

    def complete(self, request: ChatRequest, timeout_s: float) -> ChatResponse:
        openai = self._openai
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
        try:
            resp = self._client.completions.create(**kwargs)
        except openai.APITimeoutError as exc:
            raise ProviderFailure("timeout", f"request timed out after {timeout_s:g} s") from exc
        except openai.APIStatusError as exc:
            raise ProviderFailure(
                classify_status(exc.status_code),
                f"HTTP {exc.status_code} from {self.base_url}: {_short(exc.message)}",
                status=exc.status_code,
                retry_after=retry_after_seconds(getattr(exc.response, "headers", None)),
            ) from exc
        except openai.APIResponseValidationError as exc:
            raise ProviderFailure("malformed", f"malformed reply from {self.base_url}") from exc
        except openai.APIConnectionError as exc:
            raise ProviderFailure("connection", f"cannot reach {self.base_url}: {_short(str(exc))}") from exc
        except (json.JSONDecodeError, ValueError) as exc:
            raise ProviderFailure(
                "malformed", f"malformed reply from {self.base_url}: {_short(str(exc))}"
            ) from exc
        try:
            choice = resp.choices[0]
            usage = resp.usage
            return ChatResponse(
                text=choice.text or "",
                tokens_in=int(getattr(usage, "prompt_tokens", 0) or 0),
                tokens_out=int(getattr(usage, "completion_tokens", 0) or 0),
                model=str(getattr(resp, "model", "") or ""),
                finish_reason=str(choice.finish_reason or ""),
                fingerprint=str(getattr(resp, "system_fingerprint", "") or ""),
            )
        except (AttributeError, IndexError, TypeError) as exc:
            raise ProviderFailure("malformed", f"malformed reply from {self.base_url}: no choices") from exc
