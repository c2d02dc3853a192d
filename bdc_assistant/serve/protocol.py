"""The OpenAI request subset ``bdc serve`` accepts, validated into plain values (or one-sentence 400s).

Unknown fields are ignored (editors send many: ``tools``, ``user``, ``frequency_penalty``…), so a client
written for OpenAI works unchanged; fields that would change the answer in a way we cannot honour
(``n`` > 1) are refused with one sentence rather than silently ignored.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import BadRequest
from .jobs import Sampling

MAX_STOPS = 16  # OpenAI allows 4; editors (Continue) send their template's stop words unsliced to other hosts


class _Common(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str | None = None
    max_tokens: int | None = Field(None, ge=1, le=32768)
    max_completion_tokens: int | None = Field(None, ge=1, le=32768)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool | None = False
    stream_options: dict[str, Any] | None = None
    n: int | None = Field(1, ge=1)

    def sampling(self) -> Sampling:
        if self.n not in (None, 1):
            raise BadRequest("Only n = 1 is supported: ask for one choice per request.")
        stops: list[str] = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        stops = [s for s in stops if s]
        if len(stops) > MAX_STOPS:
            raise BadRequest(f"At most {MAX_STOPS} stop sequences are allowed, got {len(stops)}.")
        return Sampling(
            max_tokens=self.max_completion_tokens or self.max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            stop=tuple(stops),
            seed=self.seed,
        )

    @property
    def include_usage(self) -> bool:
        return bool((self.stream_options or {}).get("include_usage"))


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[dict[str, Any]] | None = None


class ChatRequest(_Common):
    messages: list[ChatMessage] = Field(min_length=1)

    def problem(self) -> str:
        """The last user message's text: the problem that is embedded, customized for and answered."""
        for msg in reversed(self.messages):
            if msg.role == "user":
                text = _text_of(msg.content)
                if text.strip():
                    return text
                break
        raise BadRequest("The request has no user message with text to answer.")


class CompletionRequest(_Common):
    prompt: str | list[str]

    def text(self) -> str:
        if isinstance(self.prompt, list):
            if len(self.prompt) != 1:
                raise BadRequest("Send exactly one prompt per request (a string, or a list of one string).")
            prompt = self.prompt[0]
        else:
            prompt = self.prompt
        if not prompt:
            raise BadRequest("The prompt is empty.")
        return prompt


def _text_of(content: str | list[dict[str, Any]] | None) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    parts = []
    for part in content:
        kind = part.get("type")
        if kind == "text" and isinstance(part.get("text"), str):
            parts.append(part["text"])
        else:
            raise BadRequest(
                f"Message content parts of type '{kind}' are not supported: this model reads text only."
            )
    return "\n".join(parts)


def _sentence(err: ValidationError) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first.get("loc", ()) if p != "__root__")
    msg = str(first.get("msg", "is invalid")).rstrip(".")
    if first.get("type") == "missing":
        return f"The field '{loc}' is required."
    where = f"the field '{loc}'" if loc else "the request body"
    return f"Invalid request: {where}: {msg[:1].lower() + msg[1:]}."


def parse_body(raw: bytes, model: type[_Common]) -> Any:
    """Decode and validate a JSON body, or raise :class:`BadRequest` with one sentence."""
    try:
        data = json.loads(raw or b"")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadRequest("The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise BadRequest("The request body must be a JSON object.")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise BadRequest(_sentence(exc)) from None
