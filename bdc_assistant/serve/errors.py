"""Errors of the OpenAI-compatible server; each carries its HTTP status and one sentence for the client."""

from __future__ import annotations

from ..errors import BdcError


class ServeError(BdcError):
    """A request the server refuses; ``status`` is the HTTP status, ``kind`` the OpenAI error type."""

    status = 500
    kind = "server_error"


class BadRequest(ServeError):
    status = 400
    kind = "invalid_request_error"


class Unauthorized(ServeError):
    status = 401
    kind = "authentication_error"


class NotFound(ServeError):
    status = 404
    kind = "not_found_error"


class ServerBusy(ServeError):
    status = 503
    kind = "server_busy"
