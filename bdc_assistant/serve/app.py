"""The OpenAI-compatible ASGI app (Starlette + sse-starlette, from llama-cpp-python[server]'s stack).

Routes: ``GET /v1/models``, ``POST /v1/chat/completions``, ``POST /v1/completions`` (streaming as
server-sent events, or one JSON body), and ``GET /bdc/status`` (instances, queue, tokens produced — what
the tests and an operator watch). Every response of a generation carries ``"bdc"``: the request's gates
summary and expert mixture, or a note that the plain base answered.

Errors are OpenAI-shaped (``{"error": {"message", "type", ...}}``) with one sentence: 400 malformed
request, 401 missing/wrong key, 503 queue full (with ``Retry-After``). A client that disconnects stops
its generation at the next token: sse-starlette cancels the stream, and a non-streaming request polls
for the disconnect while it waits.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from ..backends.base import CancelToken
from ..errors import BdcError
from .errors import NotFound, ServeError, Unauthorized
from .jobs import Begin, Delta, End, Item, complete_job, solve_job
from .pool import InstancePool, Running, Ticket
from .protocol import ChatRequest, CompletionRequest, parse_body

DISCONNECT_POLL_S = 0.2  # non-streaming requests: how often to ask whether the client is still there


@dataclass
class ServeState:
    pool: InstancePool
    model_name: str = "bdc"
    api_key: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    created: int = field(default_factory=lambda: int(time.time()))


def _error(exc: BaseException) -> Any:
    from starlette.responses import JSONResponse

    if isinstance(exc, ServeError):
        status, kind, message = exc.status, exc.kind, str(exc)
    elif isinstance(exc, BdcError):
        status, kind, message = 500, "server_error", str(exc)
    else:
        status, kind = 500, "server_error"
        message = (
            f"The model failed while answering ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})."
        )
    headers = {"Retry-After": "1"} if status == 503 else None
    body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return JSONResponse(body, status_code=status, headers=headers)


def _authorize(state: ServeState, request: Any) -> None:
    if not state.api_key:
        return
    header = request.headers.get("authorization", "")
    given = (
        header[7:].strip() if header.lower().startswith("bearer ") else request.headers.get("x-api-key", "")
    )
    if not given or not hmac.compare_digest(given.encode(), state.api_key.encode()):
        raise Unauthorized("This server needs its API key: send it as 'Authorization: Bearer KEY'.")


def _usage(end: End) -> dict[str, int]:
    return {
        "prompt_tokens": end.prompt_tokens,
        "completion_tokens": end.completion_tokens,
        "total_tokens": end.prompt_tokens + end.completion_tokens,
    }


def _finish(end: End) -> str:
    # "cancelled" is ours; OpenAI clients know stop / length (and the client that cancelled is gone anyway)
    return "length" if end.finish_reason == "length" else "stop"


async def _items(
    state: ServeState, ticket: Ticket, job: Any, cancel: CancelToken, running: Running | None
) -> AsyncIterator[Item]:
    try:
        async for item in state.pool.run(ticket, job, cancel, running):
            if isinstance(item, Begin | End) and item.bdc.get("customized"):
                item.bdc["mixture"] = state.info.get("mixture") or "exact"
            yield item
    finally:
        ticket.drop()  # no-op once the job ran; frees the place if we never got an instance


async def _collect(request: Any, items: AsyncIterator[Item], cancel: CancelToken) -> tuple[Begin, str, End]:
    """Drain a job for a non-streaming response, cancelling it if the client goes away meanwhile."""

    async def drain() -> tuple[Begin | None, list[str], End | None]:
        begin: Begin | None = None
        end: End | None = None
        parts: list[str] = []
        async for item in items:
            if isinstance(item, Begin):
                begin = item
            elif isinstance(item, Delta):
                parts.append(item.text)
            elif isinstance(item, End):
                end = item
        return begin, parts, end

    task = asyncio.ensure_future(drain())
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=DISCONNECT_POLL_S)
            if done:
                break
            if await request.is_disconnected():
                cancel.cancel()
                task.cancel()
                break
    finally:
        if not task.done():
            task.cancel()
    begin, parts, end = await task
    if begin is None or end is None:
        raise ServeError("The model stopped without finishing its answer.")
    return begin, "".join(parts), end


def _merge(begin: Begin, end: End | None) -> dict[str, Any]:
    out = dict(begin.bdc)
    if end is not None:
        out.update(end.bdc)
        out["finish"] = end.finish_reason
        if end.ttft_s is not None:
            out["ttft_ms"] = round(end.ttft_s * 1e3, 2)
    return out


def _sse(obj: dict[str, Any]) -> dict[str, str]:
    return {"data": json.dumps(obj, ensure_ascii=False)}


def build_app(state: ServeState) -> Any:
    """The Starlette app for ``state`` (one pool of model instances)."""
    from sse_starlette.sse import EventSourceResponse
    from starlette.applications import Starlette
    from starlette.background import BackgroundTask
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    def model_card() -> dict[str, Any]:
        return {
            "id": state.model_name,
            "object": "model",
            "created": state.created,
            "owned_by": "bdc-assistant",
            "bdc": state.info,
        }

    async def models(request: Request) -> Any:
        try:
            _authorize(state, request)
        except ServeError as exc:
            return _error(exc)
        return JSONResponse({"object": "list", "data": [model_card()]})

    async def model(request: Request) -> Any:
        try:
            _authorize(state, request)
            if request.path_params["model"] != state.model_name:
                raise NotFound(
                    f"There is no model '{request.path_params['model']}' here; this server has '{state.model_name}'."
                )
        except ServeError as exc:
            return _error(exc)
        return JSONResponse(model_card())

    async def status(request: Request) -> Any:
        try:
            _authorize(state, request)
        except ServeError as exc:
            return _error(exc)
        return JSONResponse({"model": state.model_name, **state.info, **state.pool.status()})

    async def generate(request: Request, chat: bool) -> Any:
        ticket: Ticket | None = None
        try:
            _authorize(state, request)
            raw = await request.body()
            if chat:
                req: Any = parse_body(raw, ChatRequest)
                text = req.problem()
            else:
                req = parse_body(raw, CompletionRequest)
                text = req.text()
            sampling = req.sampling()
            ticket = state.pool.admit()
        except ServeError as exc:
            return _error(exc)
        cancel = CancelToken()
        job_fn = solve_job if chat else complete_job
        job = partial(_bound_job, job_fn, text, sampling)
        # Start now when an instance is free, so the customization overlaps the response's setup.
        running = state.pool.try_start(ticket, job, cancel)
        items = _items(state, ticket, job, cancel, running)
        ident = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]
        created = int(time.time())
        name = req.model or state.model_name
        if req.stream:
            stream = _chat_stream if chat else _completion_stream
            # The background task runs however the response ends: it stops a job whose stream was never
            # read (the client left before the first event); after a normal end it is a no-op.
            return EventSourceResponse(
                _sse_stream(stream(items, ident, created, name, req.include_usage), cancel),
                sep="\n",
                ping=15,
                background=BackgroundTask(cancel.cancel),
            )
        try:
            begin, content, end = await _collect(request, items, cancel)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return _error(exc)
        if chat:
            choice: dict[str, Any] = {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": _finish(end),
                "logprobs": None,
            }
            obj = "chat.completion"
        else:
            choice = {"index": 0, "text": content, "finish_reason": _finish(end), "logprobs": None}
            obj = "text_completion"
        return JSONResponse(
            {
                "id": ident,
                "object": obj,
                "created": created,
                "model": name,
                "choices": [choice],
                "usage": _usage(end),
                "bdc": _merge(begin, end),
            }
        )

    async def chat_completions(request: Request) -> Any:
        return await generate(request, chat=True)

    async def completions(request: Request) -> Any:
        return await generate(request, chat=False)

    async def not_found(request: Request, exc: Exception) -> Any:
        return _error(NotFound(f"There is no route {request.method} {request.url.path} on this server."))

    async def method_not_allowed(request: Request, exc: Exception) -> Any:
        err = ServeError(f"{request.method} is not allowed on {request.url.path}.")
        err.status, err.kind = 405, "invalid_request_error"
        return _error(err)

    routes = [Route("/bdc/status", status, methods=["GET"])]
    # The same API with and without the /v1 prefix: clients differ in whether their base URL includes it.
    for prefix in ("/v1", ""):
        routes += [
            Route(f"{prefix}/models", models, methods=["GET"]),
            Route(prefix + "/models/{model:path}", model, methods=["GET"]),
            Route(f"{prefix}/chat/completions", chat_completions, methods=["POST"]),
            Route(f"{prefix}/completions", completions, methods=["POST"]),
        ]
    return Starlette(routes=routes, exception_handlers={404: not_found, 405: method_not_allowed})


def _bound_job(
    job_fn: Any, text: str, sampling: Any, solver: Any, cancel: CancelToken, emit: Any, on_token: Any
) -> None:
    job_fn(solver, text, sampling, cancel, emit, on_token)


async def _sse_stream(
    events: AsyncIterator[dict[str, str]], cancel: CancelToken
) -> AsyncIterator[dict[str, str]]:
    """A stream's events, then ``[DONE]``; a failure becomes one OpenAI-shaped error event and stops the job,
    and so does the client leaving (the stream is cancelled)."""
    try:
        async for event in events:
            yield event
    except (Exception, asyncio.CancelledError) as exc:
        cancel.cancel()
        if isinstance(exc, asyncio.CancelledError):
            raise
        yield _sse(json.loads(_error(exc).body))
        return
    yield {"data": "[DONE]"}


async def _chat_stream(
    items: AsyncIterator[Item], ident: str, created: int, model: str, include_usage: bool
) -> AsyncIterator[dict[str, str]]:
    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, str]:
        return _sse(
            {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
                **extra,
            }
        )

    begin: Begin | None = None
    async for item in items:
        if isinstance(item, Begin):
            begin = item
            yield chunk({"role": "assistant", "content": ""}, bdc=item.bdc)
        elif isinstance(item, Delta):
            yield chunk({"content": item.text})
        elif isinstance(item, End):
            yield chunk({}, _finish(item), bdc=_merge(begin, item) if begin else item.bdc)
            if include_usage:
                yield _sse(
                    {
                        "id": ident,
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": model,
                        "choices": [],
                        "usage": _usage(item),
                    }
                )


async def _completion_stream(
    items: AsyncIterator[Item], ident: str, created: int, model: str, include_usage: bool
) -> AsyncIterator[dict[str, str]]:
    def chunk(text: str, finish: str | None = None, **extra: Any) -> dict[str, str]:
        return _sse(
            {
                "id": ident,
                "object": "text_completion",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "text": text, "finish_reason": finish, "logprobs": None}],
                **extra,
            }
        )

    begin: Begin | None = None
    first = True
    async for item in items:
        if isinstance(item, Begin):
            begin = item
        elif isinstance(item, Delta):
            # The customization rides on the first chunk, as the chat stream's role chunk carries it.
            yield chunk(item.text, bdc=begin.bdc) if first and begin else chunk(item.text)
            first = False
        elif isinstance(item, End):
            final = _merge(begin, item) if begin else item.bdc
            extra: dict[str, Any] = {"bdc": final}
            if include_usage:
                extra["usage"] = _usage(item)
            yield chunk("", _finish(item), **extra)
