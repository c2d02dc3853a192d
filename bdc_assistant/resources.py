"""Package data (prompts, provider presets, the shipped bundle, problem sets), found with importlib.resources.

Everything the app reads at run time lives inside the package (``bdc_assistant/assets``), so a
non-editable ``pip install .`` or ``pipx install .`` has it too; the top-level ``assets`` of the source tree
is a link to the same folder.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def assets_dir() -> Path:
    """The package's ``assets`` folder as a real path (the package is never imported from a zip)."""
    return Path(str(files("bdc_assistant") / "assets"))


def asset(*parts: str) -> Path:
    return assets_dir().joinpath(*parts)
