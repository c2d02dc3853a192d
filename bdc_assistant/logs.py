"""The log file: ``state_dir/logs/bdc.log`` (``bdc paths`` shows it), rotated at 1 MiB, three old files kept.

``bdc`` sets it up once per process (:func:`setup_logging`); the TUI owns the terminal, so the file is
where tracebacks go. At the default level (INFO) nothing the user typed and no key is written: modules log
ids, names, counts and the tracebacks of failures. Problem texts appear only at DEBUG (``bdc --verbose``),
and keys never.
"""

from __future__ import annotations

import logging
import sys
from logging.handlers import RotatingFileHandler
from pathlib import Path

from .paths import app_paths

_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s"
_handlers: list[logging.Handler] = []


def log_file() -> Path:
    return app_paths().log_file


def setup_logging(*, verbose: bool = False, stderr: bool = False) -> Path:
    """Send every logger's records to the log file (and to stderr with ``stderr``); return the file.

    Idempotent: a second call (tests, a changed ``BDC_HOME``) replaces the handlers of the first.
    """
    root = logging.getLogger()
    for old in _handlers:
        root.removeHandler(old)
        old.close()
    _handlers.clear()
    path = log_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    level = logging.DEBUG if verbose else logging.INFO
    handler: logging.Handler = RotatingFileHandler(path, maxBytes=1 << 20, backupCount=3, encoding="utf-8")
    handler.setFormatter(logging.Formatter(_FORMAT))
    _handlers.append(handler)
    if stderr:
        echo = logging.StreamHandler(sys.stderr)
        echo.setFormatter(logging.Formatter("bdc %(levelname)s %(name)s: %(message)s"))
        _handlers.append(echo)
    for h in _handlers:
        h.setLevel(level)
        root.addHandler(h)
    root.setLevel(level)
    return path
