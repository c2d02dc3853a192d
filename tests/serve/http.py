"""Plain HTTP against a running server (no client library in between): raw bodies, SSE lines, disconnects."""

from __future__ import annotations

import http.client
import json
import time
from typing import Any
from urllib.parse import urlsplit


def request(
    base: str,
    method: str,
    path: str,
    body: bytes | dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], Any]:
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    conn.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
    resp = conn.getresponse()
    raw = resp.read()
    conn.close()
    try:
        parsed: Any = json.loads(raw)
    except ValueError:
        parsed = raw.decode("utf-8", "replace")
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, parsed


def one_sentence(message: str) -> bool:
    """One sentence: ends with a full stop, no line breaks, no second sentence after a '. '."""
    body = message.strip()
    return (
        bool(body) and body.endswith(".") and "\n" not in body and ". " not in body[:-1].replace("e.g. ", "")
    )


class Stream:
    """A streaming POST read line by line; ``close()`` drops the connection like a client that went away."""

    def __init__(self, base: str, path: str, body: dict[str, Any]) -> None:
        parts = urlsplit(base)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
        self.conn.request(
            "POST", path, body=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        self.resp = self.conn.getresponse()
        self.status = self.resp.status

    def events(self, n: int) -> list[dict[str, Any]]:
        """The next ``n`` JSON data events."""
        out: list[dict[str, Any]] = []
        while len(out) < n:
            line = self.resp.fp.readline()
            if not line:
                break
            text = line.decode().strip()
            if text.startswith("data: ") and text != "data: [DONE]":
                out.append(json.loads(text[6:]))
        return out

    def close(self) -> float:
        """Close the socket; returns the time.monotonic() of the close."""
        sock = self.conn.sock
        if sock is not None:
            import socket

            sock.shutdown(socket.SHUT_RDWR)
        self.conn.close()
        return time.monotonic()
