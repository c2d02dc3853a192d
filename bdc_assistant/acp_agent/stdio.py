"""Run the ACP agent over stdin/stdout, with stdout reserved for JSON-RPC.

Why not the SDK's ``stdio_streams``: a stray line on stdout (a library's ``print``, a C library writing to
fd 1) would corrupt the protocol stream and the editor would drop the agent. So the real stdout file
descriptor is duplicated for the protocol, and fd 1 and ``sys.stdout`` are pointed at stderr before any
model code runs.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

STDIO_LIMIT = 50 * 1024 * 1024  # prompts may embed whole files


class _WriteProtocol(asyncio.BaseProtocol):
    """Flow control for the protocol's write pipe (what ``asyncio.StreamWriter.drain`` waits on)."""

    def __init__(self) -> None:
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        self._waiter = None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._closed.done():
            self._closed.set_result(None)
        self.resume_writing()

    async def _drain_helper(self) -> None:
        if self._paused:
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter

    def _get_close_waiter(self, stream: Any) -> asyncio.Future[None]:
        return self._closed


def reserve_stdout() -> int:
    """Duplicate fd 1 for the protocol and send everything else written to stdout to stderr."""
    sys.stdout.flush()
    proto_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return proto_fd


async def open_streams(proto_fd: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=STDIO_LIMIT)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    out = os.fdopen(proto_fd, "wb", buffering=0)
    transport, protocol = await loop.connect_write_pipe(_WriteProtocol, out)
    writer = asyncio.StreamWriter(transport, protocol, None, loop)
    return reader, writer


async def serve_stdio(agent: Any, proto_fd: int) -> None:
    from acp.core import AgentSideConnection

    reader, writer = await open_streams(proto_fd)
    conn = AgentSideConnection(agent, writer, reader, listening=False)
    try:
        await conn.listen()  # returns when the client closes stdin
    finally:
        await asyncio.shield(conn.close())


def run_acp(agent: Any) -> None:
    proto_fd = reserve_stdout()
    try:
        asyncio.run(serve_stdio(agent, proto_fd))
    finally:
        close = getattr(agent, "close", None)
        if close is not None:
            close()
