"""Import a script of ``bench/`` (a folder of scripts, not a package) as a module, for the tests of its
pure parts."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parents[1] / "bench"


def bench_script(name: str) -> ModuleType:
    """``bench/<name>.py`` as a module; ``bench/`` is on ``sys.path`` only while it is imported (its scripts
    import each other by bare name)."""
    sys.path.insert(0, str(BENCH))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCH))
