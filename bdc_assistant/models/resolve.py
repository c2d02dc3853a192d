"""Turn the ``[models]`` settings into concrete, checked paths (user overrides or embedded defaults)."""

from __future__ import annotations

import struct
from pathlib import Path

from ..config import Settings
from ..errors import ModelError
from . import embedded

GGUF_MAGIC = b"GGUF"


def check_gguf(path: Path, role: str) -> Path:
    """Refuse a missing, empty, truncated or non-GGUF file with one sentence (before llama.cpp crashes on it)."""
    if not path.exists():
        raise ModelError(f"The {role} model file {path} does not exist.")
    size = path.stat().st_size
    if size < 24:
        raise ModelError(f"The {role} model file {path} is empty or truncated ({size} bytes).")
    with path.open("rb") as fh:
        head = fh.read(24)
    if head[:4] != GGUF_MAGIC:
        raise ModelError(f"The {role} model file {path} is not a GGUF file (bad magic {head[:4]!r}).")
    version = struct.unpack("<I", head[4:8])[0]
    if version not in (2, 3):
        raise ModelError(f"The {role} model file {path} has unsupported GGUF version {version}.")
    n_tensors = struct.unpack("<Q", head[8:16])[0]
    if n_tensors == 0 or n_tensors > 1_000_000:
        raise ModelError(f"The {role} model file {path} is corrupt (implausible tensor count {n_tensors}).")
    return path


def base_gguf(settings: Settings) -> Path:
    """The base solver's GGUF: the configured one, or the embedded gemma-3-270m (assembled on first use)."""
    if settings.models.base_gguf:
        return check_gguf(Path(settings.models.base_gguf).expanduser(), "base")
    path = embedded.base_gguf_path()
    if not path.exists():
        path = embedded.install_base()
    return check_gguf(path, "base")


def small_gguf(settings: Settings) -> Path:
    if settings.models.small_gguf:
        return check_gguf(Path(settings.models.small_gguf).expanduser(), "small")
    return check_gguf(embedded.small_gguf_path(), "small")


def encoder_dir(settings: Settings) -> Path:
    if settings.models.encoder:
        path = Path(settings.models.encoder).expanduser()
        if not path.is_dir():
            raise ModelError(f"The encoder directory {path} does not exist.")
        return path
    return embedded.encoder_path()


def is_embedded_base(settings: Settings) -> bool:
    return not settings.models.base_gguf
