"""Runners for worker threads: one :class:`~.runner.DeepRunner` (its own store connection) per thread at a
time, reused across jobs and closed at the end (``bdc collect --parallel``, ``bdc deep-bench --jobs``)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .runner import DeepRunner


class RunnerPool:
    def __init__(self, make_runner: Callable[[], DeepRunner]) -> None:
        self._make = make_runner
        self._lock = threading.Lock()
        self._idle: list[DeepRunner] = []
        self._made: list[DeepRunner] = []

    @contextmanager
    def lease(self) -> Iterator[DeepRunner]:
        """An idle runner, or a new one; it goes back to the pool when the job is done."""
        with self._lock:
            runner = self._idle.pop() if self._idle else None
        if runner is None:
            runner = self._make()  # outside the lock: it opens a database
            with self._lock:
                self._made.append(runner)
        try:
            yield runner
        finally:
            with self._lock:
                self._idle.append(runner)

    def close(self) -> None:
        """Close every runner's store (after the threads have stopped)."""
        for runner in self._made:
            runner.store.close()
