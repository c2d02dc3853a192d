"""The one way the TUI runs blocking work: a thread worker whose failure is one sentence on screen.

An uncaught exception in a Textual worker would exit the app, so every worker goes through
:func:`start_worker`: a :class:`BdcError` is its own sentence; anything else is a bug, so its traceback is
written to the log file first and the sentence names that file.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from textual.dom import DOMNode

from ..errors import BdcError
from ..logs import log_file

log = logging.getLogger(__name__)


def failure_sentence(what: str, exc: BaseException) -> str:
    detail = " ".join(str(exc).split())[:200] or "no message"
    return f"{what} failed ({type(exc).__name__}: {detail}); the traceback is in {log_file()}."


def start_worker(
    node: DOMNode, work: Callable[[], object], *, group: str, what: str, on_error: Callable[[str], object]
) -> None:
    """Run ``work`` in a thread worker of ``node``; on failure call ``on_error`` (from the worker thread:
    it must post a message or use ``call_from_thread``) with one sentence."""

    def guarded() -> None:
        try:
            work()
        except BdcError as exc:
            log.info("%s: %s", what, type(exc).__name__)
            on_error(str(exc))
        except Exception as exc:
            log.exception("%s failed", what)
            on_error(failure_sentence(what, exc))

    node.run_worker(guarded, thread=True, group=group, exit_on_error=False)
