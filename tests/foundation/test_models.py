from __future__ import annotations

import os
from pathlib import Path

import pytest

from bdc_assistant.errors import ChecksumError, ModelError
from bdc_assistant.models import embedded, resolve


def test_check_gguf_accepts_real_file(embedded_base_gguf: Path) -> None:
    assert resolve.check_gguf(embedded_base_gguf, "base") == embedded_base_gguf


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "empty or truncated"), (b"PK\x03\x04" + b"\0" * 40, "not a GGUF file"),
     (b"GGUF" + (99).to_bytes(4, "little") + b"\0" * 30, "unsupported GGUF version")],
)  # fmt: skip
def test_check_gguf_rejects_bad_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "m.gguf"
    path.write_bytes(content)
    with pytest.raises(ModelError, match=message):
        resolve.check_gguf(path, "base")


def test_sha_mismatch_of_embedded_model_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BDC_MODELS_DIR", str(tmp_path))
    fake = tmp_path / embedded.BASE_NAME
    fake.write_bytes(b"GGUF" + b"\3\0\0\0" + b"\1" * 64)
    with pytest.raises(ChecksumError, match="sha256 mismatch"):
        embedded.install_base()
    assert embedded.ModelFile("base_gguf", fake, embedded.BASE_SHA256).status() == "sha_mismatch"


def test_cached_sha_is_invalidated_by_change(tmp_path: Path) -> None:
    f = tmp_path / "x.bin"
    f.write_bytes(b"a")
    first = embedded.cached_sha256(f)
    f.write_bytes(b"bb")
    os.utime(f, ns=(1, 1))
    assert embedded.cached_sha256(f) != first


def test_embedded_small_model_and_encoder_are_found() -> None:
    assert embedded.small_gguf_path().stat().st_size > 50_000_000
    assert (embedded.encoder_path() / "config.json").exists()
