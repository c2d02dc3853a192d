from __future__ import annotations

from pathlib import Path

import pytest

from bdc_assistant.config import load_settings, settings_as_toml
from bdc_assistant.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_defaults_without_file(tmp_path: Path) -> None:
    s = load_settings(tmp_path / "missing.toml")
    assert s.backend.name == "auto"
    assert s.solver.max_tokens > 0


def test_file_values_are_read(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, '[backend]\nname = "llamacpp"\nthreads = 2\n'))
    assert s.backend.name == "llamacpp"
    assert s.backend.threads == 2


def test_env_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BDC_BACKEND__THREADS", "7")
    s = load_settings(write(tmp_path, "[backend]\nthreads = 2\n"))
    assert s.backend.threads == 7


def test_unknown_key_names_key_and_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[backend]\nthreadz = 2\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert "backend.threadz" in str(err.value)
    assert str(path) in str(err.value)


def test_unknown_section(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'nonsense'"):
        load_settings(write(tmp_path, "[nonsense]\na = 1\n"))


def test_bad_value_is_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, '[backend]\nname = "cuda-magic"\n'))
    assert "backend.name" in str(err.value)
    assert "\n" not in str(err.value)


def test_bad_env_value_names_env_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BDC_SOLVER__MAX_TOKENS", "lots")
    with pytest.raises(ConfigError, match="BDC_SOLVER__MAX_TOKENS"):
        load_settings(tmp_path / "none.toml")


def test_invalid_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write(tmp_path, "[backend\n"))


def test_round_trip_as_toml(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, "[solver]\nmax_tokens = 99\n"))
    again = load_settings(write(tmp_path, settings_as_toml(s)))
    assert again == s


def test_bdc_home_relocates_every_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bdc_assistant.paths import app_paths

    monkeypatch.setenv("BDC_HOME", str(tmp_path / "h"))
    monkeypatch.delenv("BDC_MODELS_DIR")
    paths = app_paths()
    for p in (paths.config_dir, paths.data_dir, paths.cache_dir, paths.state_dir, paths.models_dir):
        assert str(p).startswith(str(tmp_path / "h"))
    assert len({paths.config_dir, paths.data_dir, paths.cache_dir, paths.state_dir}) == 4
