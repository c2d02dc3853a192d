"""The app's bundle registry: register (validated, atomic), list, use, rollback, active info, new data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bdc_assistant import bundles
from bdc_assistant.cli import main
from bdc_assistant.errors import BundleError


@pytest.fixture(scope="module")
def tiny_hf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from bdc_assistant.models.tiny import build_tiny

    return build_tiny("llama", tmp_path_factory.mktemp("tiny"), seed=0).hf_dir


def _bundle(
    tiny_hf: Path, out: Path, *, seed: int, K: int = 2, seen: int | None = None, summary: dict | None = None
) -> Path:
    from bdc_assistant.disen.random_bundle import make_random_bundle

    path = make_random_bundle(tiny_hf, out, K=K, r=2, seed=seed, embed_dim=8, hidden=4)
    if seen is not None or summary is not None:  # re-save through the real writer with provenance/metrics
        from bdc_assistant.disen.bundle import load_bundle, save_bundle

        b = load_bundle(path)
        m = json.loads((path / "manifest.json").read_text())
        if seen is not None:
            m["provenance"]["app_trajectories_seen"] = seen
        if summary is not None:
            m["metrics"] = {
                "summary": summary,
                "evaluation_datasets": ["humaneval"],
                "evaluation_backend": "torch",
            }
        save_bundle(
            path,
            manifest=m,
            experts=[path / "experts" / f"expert_{k}" for k in range(b.K)],
            centroids=b.centroids,
            hypernet_state=b.hypernet_state,
            overwrite=True,
        )
    return path


@pytest.fixture()
def no_shipped(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(bundles, "ASSETS_DIR", tmp_path / "no-assets")


@pytest.fixture()
def shipped(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_hf: Path) -> Path:
    assets = tmp_path / "assets"
    _bundle(tiny_hf, assets / "bundles" / "default", seed=9, K=3)
    monkeypatch.setattr(bundles, "ASSETS_DIR", assets)
    return assets / "bundles" / "default"


def test_fresh_install_with_nothing(no_shipped: None) -> None:
    assert bundles.list_bundles() == []
    assert bundles.active_bundle_info() is None and bundles.active_bundle_path() is None
    with pytest.raises(BundleError, match="no previous bundle"):
        bundles.rollback()


def test_fresh_install_shows_the_shipped_bundle(shipped: Path) -> None:
    info = bundles.active_bundle_info()
    assert (
        info is not None and info["id"] == "shipped" and info["experts"] == 3 and info["source"] == "shipped"
    )
    assert info["base"]["arch"] == "llama" and "data_hash" in info
    assert bundles.active_bundle_path() is None  # the solver falls back to the shipped dir itself


def test_register_use_rollback_round_trip(shipped: Path, tiny_hf: Path, tmp_path: Path) -> None:
    a = bundles.register(_bundle(tiny_hf, tmp_path / "a", seed=1))
    assert not a.active and a.path.parent == bundles._registry()
    assert bundles.active_entry().id == "shipped"  # registering does not switch
    bundles.use(a.id)
    assert bundles.active_bundle_path() == a.path
    b = bundles.register(_bundle(tiny_hf, tmp_path / "b", seed=2), activate=True)
    assert bundles.active_entry().id == b.id
    assert [e.id for e in bundles.list_bundles()] == ["shipped", a.id, b.id]
    assert [e.active for e in bundles.list_bundles()] == [False, False, True]
    assert bundles.rollback().id == a.id
    assert bundles.rollback().id == "shipped"
    assert bundles.active_bundle_path() is None
    with pytest.raises(BundleError, match="no previous bundle"):
        bundles.rollback()


def test_corrupt_bundle_is_refused_and_nothing_changes(shipped: Path, tiny_hf: Path, tmp_path: Path) -> None:
    src = _bundle(tiny_hf, tmp_path / "bad", seed=3)
    f = src / "experts" / "expert_0" / "adapter_model.safetensors"
    f.write_bytes(f.read_bytes()[:-10])
    with pytest.raises(BundleError, match="truncated or modified"):
        bundles.register(src, activate=True)
    assert [e.id for e in bundles.list_bundles()] == ["shipped"]
    assert not any(p.name.startswith(".bundle") for p in bundles._registry().glob(".*") if p.is_dir())
    with pytest.raises(BundleError, match="No bundle 'nope'"):
        bundles.use("nope")


def test_deleted_active_bundle_falls_back_and_rollback_skips_it(
    shipped: Path, tiny_hf: Path, tmp_path: Path
) -> None:
    a = bundles.register(_bundle(tiny_hf, tmp_path / "a", seed=1), activate=True)
    b = bundles.register(_bundle(tiny_hf, tmp_path / "b", seed=2), activate=True)
    shutil.rmtree(a.path)
    assert bundles.rollback().id == "shipped"  # a is gone: skipped
    bundles.use(b.id)
    shutil.rmtree(b.path)
    assert bundles.active_entry().id == "shipped"


def test_corrupt_pointer_is_one_sentence(shipped: Path) -> None:
    reg = bundles._registry()
    reg.mkdir(parents=True, exist_ok=True)
    (reg / "active.json").write_text("{nope")
    with pytest.raises(BundleError, match="corrupt"):
        bundles.active_entry()


def test_new_trajectories_since_active(shipped: Path, tiny_hf: Path, tmp_path: Path) -> None:
    assert bundles.new_trajectories_since_active() == 0
    tdir = bundles.trajectories_dir()
    tdir.mkdir(parents=True)
    (tdir / "run1.jsonl").write_text('{"a": 1}\n{"a": 2}\n\n{"a": 3}\n')
    (tdir / "run2.jsonl").write_text('{"a": 4}\n')
    (tdir / "notes.txt").write_text("ignored\n")
    assert bundles.new_trajectories_since_active() == 4
    a = bundles.register(_bundle(tiny_hf, tmp_path / "a", seed=1, seen=3), activate=True)
    assert bundles.new_trajectories_since_active() == 1
    assert bundles.active_bundle_info()["new_trajectories"] == 1
    assert a.id in bundles.active_bundle_info()["id"]


def test_cli_list_use_rollback(
    shipped: Path, tiny_hf: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    src = _bundle(tiny_hf, tmp_path / "a", seed=1, summary={"pr": 12.5, "ac": 5.0})
    assert main(["bundles", "register", str(src)]) == 0
    reg_id = capsys.readouterr().out.split()[1]
    assert main(["bundles", "use", reg_id]) == 0
    capsys.readouterr()
    assert main(["bundles", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["active"] for r in rows] == [False, True] and rows[1]["metrics"]["ac"] == 5.0
    assert main(["bundles", "list"]) == 0
    assert "AC 5.00" in capsys.readouterr().out
    assert main(["bundles", "rollback"]) == 0
    assert "rolled back to: shipped" in capsys.readouterr().out
    assert main(["bundles", "rollback"]) == 5
    assert "no previous bundle" in capsys.readouterr().err
    assert main(["bundles", "show", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == "shipped"


def test_doctor_shows_the_active_bundle(
    shipped: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pytest.importorskip("bdc_assistant.commands.doctor")
    from bdc_assistant.models.tiny import build_tiny

    # the shipped bundle applies only to the base it was made for: run doctor on that (tiny) base
    tiny = build_tiny("llama", tmp_path / "tiny-base", seed=0)
    monkeypatch.setenv("BDC_MODELS__BASE_GGUF", str(tiny.gguf_path))
    main(["doctor", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert report["bundle"]["experts"] == 3 and report["bundle"]["id"] == "shipped"


def test_doctor_names_a_corrupt_shipped_bundle_in_one_sentence(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    pytest.importorskip("bdc_assistant.commands.doctor")
    assets = tmp_path / "assets"
    (assets / "bundles" / "default").mkdir(parents=True)
    (assets / "bundles" / "default" / "manifest.json").write_text("[1, 2]")
    monkeypatch.setattr(bundles, "ASSETS_DIR", assets)
    main(["doctor", "--json"])
    shipped = json.loads(capsys.readouterr().out)["shipped_bundle"]
    assert shipped["applies"] is False and shipped["default"] is False
    assert shipped["why"].endswith("is not a JSON object.")
