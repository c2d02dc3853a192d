"""Write changed settings back to ``config.toml`` without losing the keys the user wrote by hand.

Only the keys the settings screen edits are replaced; every other section and key is kept. Values are
validated by the section models before anything is written, so a bad value is one sentence and the file
is untouched. (Comments are not preserved: tomllib reads, and there is no round-trip writer in the venv.)
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from .. import atomic
from ..config import SECTIONS, toml_tables
from ..errors import ConfigError


def save_settings(path: Path, changes: dict[str, dict[str, Any]]) -> None:
    """Merge ``changes`` ({section: {key: value}}) into the TOML at ``path`` (atomically)."""
    current: dict[str, Any] = {}
    if path.exists():
        try:
            current = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"The config file {path} is not valid TOML, so it was not changed: {exc}."
            ) from exc
    from pydantic import ValidationError

    for section, values in changes.items():
        model = SECTIONS.get(section)
        if model is None:
            raise ConfigError(f"Unknown settings section '{section}'.")
        merged = {**current.get(section, {}), **values}
        try:
            model(**merged)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            raise ConfigError(f"Bad value for '{section}.{loc}': {err['msg']}.") from exc
        current[section] = merged
    atomic.write_text(path, toml_tables(current))
