"""Turn the ``[models]`` settings into concrete, checked paths (user overrides or embedded defaults)."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import Settings
from ..errors import BdcError, ModelError
from . import embedded

if TYPE_CHECKING:
    from ..disen.identity import BaseIdentity

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


def solver_key(settings: Settings) -> str:
    """The embedded solver chosen by ``[models] solver`` (ignored when ``base_gguf`` names a file)."""
    return settings.models.solver or embedded.DEFAULT_SOLVER


def embedded_solver(settings: Settings) -> embedded.SolverSpec | None:
    """The embedded solver model in use, or None when the user points ``base_gguf`` at their own file."""
    if settings.models.base_gguf:
        return None
    return embedded.solver_spec(solver_key(settings))


def base_gguf_location(settings: Settings) -> Path:
    """Where the base GGUF is (or will be once assembled), without assembling anything."""
    if settings.models.base_gguf:
        return Path(settings.models.base_gguf).expanduser()
    return embedded.solver_gguf_path(solver_key(settings))


def base_gguf(settings: Settings) -> Path:
    """The base solver's GGUF: the configured file, or the embedded solver (assembled on first use).

    An on-request model (coder-1.5b) is assembled here only if its wheels are already installed; fetching
    1.1 GB is left to an explicit `bdc models install coder-1.5b`.
    """
    if settings.models.base_gguf:
        return check_gguf(Path(settings.models.base_gguf).expanduser(), "base")
    key = solver_key(settings)
    path = embedded.solver_gguf_path(key)
    if not path.exists():
        path = embedded.install_solver(key)
    return check_gguf(path, "base")


def configured_base_identity(settings: Settings) -> BaseIdentity | None:
    """Identity of the configured base (GGUF header + cached sha256), without assembling or loading it.

    None when the file is not there yet (nothing to compare a bundle with) or cannot be read.
    """
    from ..disen.identity import identity_of_gguf, identity_of_hf_dir

    try:
        path = base_gguf_location(settings)
        if path.is_file():
            return identity_of_gguf(path)[0]
        if settings.models.base_hf_dir:
            return identity_of_hf_dir(Path(settings.models.base_hf_dir).expanduser())[0]
    except BdcError:
        return None
    return None


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
    """True when the base is one of the embedded solver models (not a user-configured GGUF)."""
    return not settings.models.base_gguf
