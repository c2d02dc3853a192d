"""N model instances, one request at a time on each, behind a bounded queue.

Why this shape: a llama.cpp context (or a torch model with a merged per-query ΔW) holds *one* query's
customization, so an instance serves one request at a time; ``--workers N`` loads N instances. Requests
beyond the free instances wait in a queue of at most ``max_queue``; one more is refused at once
(:class:`ServerBusy`, HTTP 503) rather than piling up behind a model that answers a few dozen tokens a
second. Admission counts every request that is admitted and not yet finished, *including* one whose
client has gone but whose generation is still winding down, so an instance is never handed out while
its previous job still runs.

Generation runs in a worker thread per job (llama.cpp releases the GIL while it decodes); items cross to
the event loop with ``call_soon_threadsafe``. The instance returns to the pool from that thread's
``finally`` — after generation has really stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from ..backends.base import CancelToken
from .errors import ServerBusy
from .jobs import Emit, End, Item

_DONE = object()


@dataclass
class Instance:
    """One loaded solver (base model + customizer) and what it has done."""

    index: int
    solver: Any
    busy: bool = False
    requests: int = 0
    tokens: int = 0
    last_finish: str = ""
    last_stopped_at: float = 0.0  # time.monotonic() when its last job's generation ended

    def count_token(self) -> None:
        self.tokens += 1


@dataclass
class Ticket:
    """An admitted request: it holds a place until it is served and its job has ended, or is dropped."""

    pool: InstancePool
    instance: Instance | None = None
    _released: bool = field(default=False, repr=False)

    async def acquire(self) -> Instance:
        self.pool._waiting += 1
        try:
            self.instance = await self.pool._free.get()
        finally:
            self.pool._waiting -= 1
        self.instance.busy = True
        return self.instance

    def drop(self) -> None:
        """Give the place back without having run a job (validation failed, client left in the queue)."""
        if not self._released and self.instance is None:
            self._released = True
            self.pool._pending -= 1


class InstancePool:
    def __init__(self, solvers: list[Any], max_queue: int) -> None:
        if not solvers:
            raise ValueError("at least one model instance is needed")
        self.instances = [Instance(i, s) for i, s in enumerate(solvers)]
        self.max_queue = max(0, int(max_queue))
        self._pending = 0  # admitted and not finished (served + waiting)
        self._waiting = 0
        self._free: asyncio.Queue[Instance] = asyncio.Queue()
        for inst in self.instances:
            self._free.put_nowait(inst)

    @property
    def capacity(self) -> int:
        return len(self.instances) + self.max_queue

    def admit(self) -> Ticket:
        """A place for one request, or :class:`ServerBusy` when every instance is busy and the queue is full."""
        if self._pending >= self.capacity:
            raise ServerBusy(
                f"The server is busy: {len(self.instances)} model instance(s) are answering and "
                f"{self.max_queue} request(s) are already queued, so retry shortly."
            )
        self._pending += 1
        return Ticket(self)

    def status(self) -> dict[str, Any]:
        return {
            "workers": len(self.instances),
            "max_queue": self.max_queue,
            "pending": self._pending,
            "waiting": self._waiting,
            "instances": [
                {
                    "index": i.index,
                    "busy": i.busy,
                    "requests": i.requests,
                    "tokens": i.tokens,
                    "last_finish": i.last_finish,
                    "idle_for_s": round(time.monotonic() - i.last_stopped_at, 3)
                    if i.last_stopped_at and not i.busy
                    else None,
                }
                for i in self.instances
            ],
        }

    def _finished(self, ticket: Ticket, finish: str) -> None:
        """Runs on the event loop once the job's thread is done with the instance."""
        inst = ticket.instance
        assert inst is not None
        inst.busy = False
        inst.requests += 1
        inst.last_finish = finish
        inst.last_stopped_at = time.monotonic()
        ticket._released = True
        self._pending -= 1
        self._free.put_nowait(inst)

    def try_start(
        self,
        ticket: Ticket,
        job: Callable[[Any, CancelToken, Emit, Callable[[], None]], None],
        cancel: CancelToken,
    ) -> Running | None:
        """Start ``ticket``'s job now if an instance is free and nobody waits before it, else None.

        The handler calls this before it builds the response, so the job's customization (embedding,
        gates, adapter) runs while the event loop sends the headers and the client reads them, instead
        of after: that is most of what HTTP would add to the time to the first token.
        """
        if self._waiting or self._free.empty():
            return None
        inst = self._free.get_nowait()
        inst.busy = True
        ticket.instance = inst
        return self._launch(ticket, inst, job, cancel)

    async def start(
        self,
        ticket: Ticket,
        job: Callable[[Any, CancelToken, Emit, Callable[[], None]], None],
        cancel: CancelToken,
    ) -> Running:
        """Wait (in the bounded queue) for a free instance, then start ``ticket``'s job on it."""
        try:
            inst = await ticket.acquire()
        except BaseException:
            ticket.drop()
            raise
        return self._launch(ticket, inst, job, cancel)

    def _launch(
        self,
        ticket: Ticket,
        inst: Instance,
        job: Callable[[Any, CancelToken, Emit, Callable[[], None]], None],
        cancel: CancelToken,
    ) -> Running:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        finish = {"reason": "error"}

        def put(item: Any) -> None:
            # RuntimeError: the loop closed under us (server shutdown): nobody is left to tell.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(queue.put_nowait, item)

        def emit(item: Item) -> None:
            if isinstance(item, End):
                finish["reason"] = item.finish_reason
            put(item)

        def work() -> None:
            try:
                job(inst.solver, cancel, emit, inst.count_token)
            except BaseException as exc:  # handed to the event loop, which turns it into one sentence
                put(exc)
            finally:
                put(_DONE)
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(self._finished, ticket, finish["reason"])

        threading.Thread(target=work, name=f"bdc-serve-{inst.index}", daemon=True).start()
        return Running(queue)

    async def run(
        self,
        ticket: Ticket,
        job: Callable[[Any, CancelToken, Emit, Callable[[], None]], None],
        cancel: CancelToken,
        running: Running | None = None,
    ) -> AsyncIterator[Item]:
        """Serve ``ticket`` on a free instance: start ``job`` in a thread (unless ``running`` says it
        already started) and yield its items.

        Closing the iterator early (client disconnect, task cancellation) sets ``cancel``; the thread
        stops at the next token and then gives the instance back.
        """
        try:
            if running is None:
                running = await self.start(ticket, job, cancel)
            while True:
                item = await running.queue.get()
                if item is _DONE:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            cancel.cancel()  # no-op after a normal end; stops the thread when the consumer left early


@dataclass(frozen=True)
class Running:
    """A started job: its items arrive on ``queue`` (ending with the done marker)."""

    queue: asyncio.Queue[Any]
