"""The one atomic-write helper: a reader sees the old target or the new one, never half of one."""

from __future__ import annotations

from pathlib import Path

import pytest

from bdc_assistant import atomic


def test_file_replaces_only_when_the_writer_finishes(tmp_path: Path) -> None:
    target = tmp_path / "model.gguf"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic.file(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed mid-write")
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["model.gguf"]
    with atomic.file(target) as tmp:
        tmp.write_bytes(b"new")
        assert target.read_bytes() == b"old"  # not visible until the block ends
    assert target.read_bytes() == b"new" and sorted(p.name for p in tmp_path.iterdir()) == ["model.gguf"]


def test_directory_refuses_to_clobber_unless_asked(tmp_path: Path) -> None:
    dest = tmp_path / "bundle"
    dest.mkdir()
    (dest / "old").write_text("x")
    with pytest.raises(OSError), atomic.directory(dest) as tmp:
        (tmp / "new").write_text("y")
    assert [p.name for p in dest.iterdir()] == ["old"]
    with pytest.raises(RuntimeError), atomic.directory(dest, replace=True) as tmp:
        (tmp / "new").write_text("y")
        raise RuntimeError("failed while filling")
    assert [p.name for p in dest.iterdir()] == ["old"]
    with atomic.directory(dest, replace=True) as tmp:
        (tmp / "new").write_text("y")
    assert [p.name for p in dest.iterdir()] == ["new"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


def test_write_text_leaves_no_temp(tmp_path: Path) -> None:
    atomic.write_json(tmp_path / "a.json", {"k": 1})
    assert (tmp_path / "a.json").read_text().strip().startswith("{")
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]
