"""Where bdc-assistant keeps its files.

platformdirs gives separate config / data / cache / state dirs. ``BDC_HOME`` relocates all four under
one directory (tests and portable installs use it). ``BDC_MODELS_DIR`` relocates only the assembled
model files, so many test homes can share one 250 MB GGUF.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

APP_NAME = "bdc-assistant"


@dataclass(frozen=True)
class AppPaths:
    config_dir: Path
    data_dir: Path
    cache_dir: Path
    state_dir: Path
    models_dir: Path

    @property
    def config_file(self) -> Path:
        return self.config_dir / "config.toml"

    @property
    def db_file(self) -> Path:
        return self.data_dir / "bdc.sqlite3"

    @property
    def bundles_dir(self) -> Path:
        return self.data_dir / "bundles"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def log_file(self) -> Path:
        return self.logs_dir / "bdc.log"

    def as_dict(self) -> dict[str, str]:
        return {
            "config_file": str(self.config_file),
            "config_dir": str(self.config_dir),
            "data_dir": str(self.data_dir),
            "cache_dir": str(self.cache_dir),
            "state_dir": str(self.state_dir),
            "models_dir": str(self.models_dir),
            "db_file": str(self.db_file),
            "bundles_dir": str(self.bundles_dir),
            "logs_dir": str(self.logs_dir),
            "log_file": str(self.log_file),
        }


def app_paths() -> AppPaths:
    """Resolve the directories now (env vars are read on every call, so tests can change them)."""
    home = os.environ.get("BDC_HOME")
    if home:
        root = Path(home).expanduser().resolve()
        paths = dict(
            config_dir=root / "config",
            data_dir=root / "data",
            cache_dir=root / "cache",
            state_dir=root / "state",
        )
    else:
        import platformdirs

        paths = dict(
            config_dir=Path(platformdirs.user_config_dir(APP_NAME)),
            data_dir=Path(platformdirs.user_data_dir(APP_NAME)),
            cache_dir=Path(platformdirs.user_cache_dir(APP_NAME)),
            state_dir=Path(platformdirs.user_state_dir(APP_NAME)),
        )
    models = os.environ.get("BDC_MODELS_DIR")
    models_dir = Path(models).expanduser().resolve() if models else paths["cache_dir"] / "models"
    return AppPaths(models_dir=models_dir, **paths)


def ensure(path: Path) -> Path:
    """Create ``path`` (a directory) if needed and return it."""
    path.mkdir(parents=True, exist_ok=True)
    return path
