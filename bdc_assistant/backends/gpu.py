"""The one GPU probe: is a CUDA GPU usable by torch here?

It answers from files on disk whenever it can (no torch installed, a CPU-only torch wheel whose
``torch/version.py`` says ``cuda = None``, no NVIDIA device node) and imports torch only when a CUDA build
meets an NVIDIA driver, so ``bdc --help``, ``bdc doctor`` and the TUI's first frame never pay for torch.
Every part that asks (backend choice, the torch backend, the trainer, doctor, retrain) asks here.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from functools import lru_cache
from pathlib import Path


def has_module(name: str) -> bool:
    """Whether ``name`` is importable here, without importing it."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _torch_is_cpu_build() -> bool | None:
    """True/False from ``torch/version.py`` without importing torch; None when it cannot tell."""
    try:
        spec = importlib.util.find_spec("torch")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    version_py = Path(next(iter(spec.submodule_search_locations))) / "version.py"
    try:
        text = version_py.read_text(encoding="utf-8")
    except OSError:
        return None
    match = re.search(r"^cuda\s*(?::[^=]*)?=\s*(.+)$", text, re.MULTILINE)
    if match is None:
        return None
    return match.group(1).strip() == "None"


def _nvidia_present() -> bool:
    return Path("/proc/driver/nvidia/version").exists() or Path("/dev/nvidia0").exists()


@lru_cache(maxsize=1)
def _cuda_probe() -> bool:
    if "torch" not in sys.modules:
        if not has_module("torch"):
            return False
        if _torch_is_cpu_build():
            return False
        if sys.platform.startswith("linux") and not _nvidia_present():
            return False
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def cuda_available() -> bool:
    """Whether a CUDA GPU is usable by torch here (cached; imports torch only when it must)."""
    return _cuda_probe()
