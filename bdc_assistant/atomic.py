"""Atomic writes: a reader sees the old file (or directory) or the new one, never half of one.

A file is written to a temp file beside it, flushed to disk and renamed over the target; a directory is
filled under a temp name beside its destination and renamed into place. A crash leaves at most a hidden
``.name.*`` temp behind, never a torn target. The app, deep mode and the trainer all write through here.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, data: Any, *, indent: int | None = 2) -> None:
    write_text(path, json.dumps(data, indent=indent, ensure_ascii=False, default=str))


def write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def file(path: Path) -> Iterator[Path]:
    """Yield a temp path beside ``path`` for a writer that streams (model assembly, GGUF writers); when the
    block ends without an error it replaces ``path`` in one rename, otherwise it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def directory(dest: Path, *, replace: bool = False) -> Iterator[Path]:
    """Yield an empty temp directory beside ``dest``; when the block ends without an error it becomes
    ``dest`` in one rename, otherwise it is removed. ``dest`` must not exist unless ``replace``: then the old
    directory is removed just before the rename (the only moment a reader can find neither)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        yield tmp
        if replace and dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
