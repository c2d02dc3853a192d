"""Bundles and the base they customize: one shipped bundle per base.

The app ships ``assets/bundles/coder-0.5b`` (trained on the embedded Qwen2.5-Coder-0.5B) and
``assets/bundles/gemma-3-270m`` (the small test base). "The shipped bundle" is the one made for the running
base; a base with none answers plainly and says so (``NO_BUNDLE_FOR_BASE``). Loading a bundle explicitly on
another base refuses with one sentence that names both bases. A shipped bundle whose own validation run put it
below the plain base is not used by default (the rule ``bdc retrain`` applies), only when asked for.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bdc_assistant import bundles
from bdc_assistant.disen.bundle import load_bundle
from bdc_assistant.disen.identity import BaseIdentity, identity_of_gguf
from bdc_assistant.errors import BundleError


@pytest.fixture(scope="module")
def qwen_id(embedded_base_gguf: Path) -> BaseIdentity:
    ident, _ = identity_of_gguf(embedded_base_gguf)
    assert ident.arch == "qwen2" and ident.n_layers == 24
    return ident


@pytest.fixture(scope="module")
def shipped() -> Path:
    """The gemma-3-270m bundle (the tests below load it on the wrong base on purpose)."""
    path = bundles.ASSETS_DIR / "bundles" / "gemma-3-270m"
    assert (path / "manifest.json").is_file(), "this build ships the gemma bundle"
    return path


@pytest.fixture(scope="module")
def shipped_qwen() -> Path:
    path = bundles.ASSETS_DIR / "bundles" / "coder-0.5b"
    assert (path / "manifest.json").is_file(), "this build ships a bundle for the embedded Qwen base"
    return path


def _shipped_base(shipped: Path) -> BaseIdentity:
    return BaseIdentity.from_dict(json.loads((shipped / "manifest.json").read_text())["base"])


def test_loading_the_gemma_bundle_on_qwen_refuses_naming_both_bases(shipped: Path, qwen_id: BaseIdentity):
    with pytest.raises(BundleError) as info:
        load_bundle(shipped, expect_base=qwen_id)
    msg = str(info.value)
    print(msg)
    assert "'gemma-3-270m-q4_k_m.gguf'" in msg and "'qwen2.5-coder-0.5b-instruct-q4_k_m.gguf'" in msg
    assert "architecture gemma3, not qwen2" in msg
    assert msg.count(". ") == 0 and "\n" not in msg  # one sentence


def test_on_qwen_the_shipped_bundle_is_the_one_made_for_qwen(
    shipped: Path, shipped_qwen: Path, qwen_id: BaseIdentity
):
    assert bundles.shipped_bundle_dir(qwen_id) == shipped_qwen
    assert bundles.base_mismatch(shipped, qwen_id) is not None
    assert bundles.base_mismatch(shipped_qwen, qwen_id) is None
    assert load_bundle(shipped_qwen, expect_base=qwen_id).K >= 3
    entry = bundles.active_entry(qwen_id)  # fresh registry: "shipped" is the Qwen one here
    assert entry is not None and entry.id == bundles.SHIPPED_ID and entry.path == shipped_qwen
    # asked for by name it is always used; by default only when its validation run is not below the base
    assert bundles.fit_to_base(shipped, "asked", qwen_id, asked=True) == (shipped_qwen, "asked")
    path, note = bundles.fit_to_base(shipped, "shipped default bundle", qwen_id)
    below = bundles.below_base(shipped_qwen)
    if below is None:
        assert (path, note) == (shipped_qwen, "shipped default bundle")
    else:
        assert path is None and note.startswith(below) and "`--bundle shipped`" in note


def test_a_base_with_no_shipped_bundle_answers_plainly(shipped: Path, qwen_id: BaseIdentity):
    from dataclasses import replace

    other = replace(qwen_id, n_layers=qwen_id.n_layers + 4)  # e.g. the 1.5B: no bundle ships for it
    assert bundles.shipped_bundle_dir(other) is None
    assert bundles.active_entry(other) is None and bundles.active_bundle_info(other) is None
    assert bundles.fit_to_base(shipped, "shipped default bundle", other) == (None, bundles.NO_BUNDLE_FOR_BASE)


def _ship(root: Path, name: str, src: Path, vs: dict | None) -> Path:
    import shutil

    dest = root / "bundles" / name
    shutil.copytree(src, dest)
    m = json.loads((dest / "manifest.json").read_text())
    row = m.setdefault("metrics", {}).setdefault("evaluation", {}).setdefault("rows", {})
    row["DisenLoRA"] = {"overall": {"ac": 40.0, "pr": 40.0, **({"vs_base": vs} if vs else {})}}
    (dest / "manifest.json").write_text(json.dumps(m))
    return dest


@pytest.mark.parametrize(
    ("ac_diff", "used"), [(-1.7, False), (0.0, True), (3.3, True), (None, True)], ids=str
)
def test_a_shipped_bundle_below_the_base_on_validation_is_not_used_by_default(
    shipped: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ac_diff: float | None, used: bool
):
    vs = (
        None
        if ac_diff is None
        else {"ac_diff": ac_diff, "ci95": [-8.3, 5.0], "solved": 26, "base_solved": 27, "n": 60}
    )
    mine = _ship(tmp_path, "gemma-3-270m", shipped, vs)
    monkeypatch.setattr(bundles, "ASSETS_DIR", tmp_path)
    gemma = _shipped_base(shipped)
    path, note = bundles.fit_to_base(mine, "shipped default bundle", gemma)
    if used:
        assert (path, note) == (mine, "shipped default bundle")
    else:
        assert path is None
        assert note == (
            "the shipped bundle for this base solves fewer validation problems than the plain base (26 of 60 "
            "validation problems against "
            "the plain base's 27, -1.7 points, 95 % CI [-8.3, +5.0]): answering with the plain base "
            "(`--bundle shipped` uses it)"
        )
    assert bundles.fit_to_base(mine, "x", gemma, asked=True) == (mine, "x")


def test_shipped_bundle_still_serves_gemma(shipped: Path):
    gemma = _shipped_base(shipped)
    assert gemma.arch == "gemma3"
    assert bundles.shipped_bundle_dir(gemma) == shipped
    entry = bundles.active_entry(gemma)
    assert entry is not None and entry.id == bundles.SHIPPED_ID
    assert bundles.fit_to_base(shipped, "shipped default bundle", gemma) == (
        shipped,
        "shipped default bundle",
    )
    assert load_bundle(shipped, expect_base=gemma).K == 2


def test_a_bundle_the_user_chose_is_kept_so_loading_it_refuses(
    shipped: Path, qwen_id: BaseIdentity, tmp_path: Path
):
    """fit_to_base only drops the shipped default; a user's bundle for another base must fail loudly."""
    import shutil

    mine = tmp_path / "mine"
    shutil.copytree(shipped, mine)
    assert bundles.fit_to_base(mine, "bundle from settings", qwen_id) == (mine, "bundle from settings")
    with pytest.raises(BundleError) as info:
        load_bundle(mine, expect_base=qwen_id)
    assert "it cannot customize 'qwen2.5-coder-0.5b-instruct-q4_k_m.gguf'" in str(info.value)


@pytest.mark.slow
def test_shipped_bundle_loads_on_the_real_gemma_gguf(shipped: Path):
    from bdc_assistant.models.embedded import install_gemma

    gemma_id, _ = identity_of_gguf(install_gemma())
    assert bundles.base_mismatch(shipped, gemma_id) is None
    assert load_bundle(shipped, expect_base=gemma_id).n_layers == 18


def test_doctor_names_the_base_and_its_shipped_bundle(embedded_base_gguf: Path, shipped_qwen: Path):
    from bdc_assistant.commands.doctor import collect

    report = collect(verify=True)
    base = report["base"]
    assert base["name"] == "Qwen2.5-Coder-0.5B-Instruct Q4_K_M" and base["solver"] == "coder-0.5b"
    assert base["sha256"] == "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
    assert base["sha256_verified"] is True and base["license"] == "Apache-2.0"
    assert report["models"]["base_gguf"] == str(embedded_base_gguf)
    assert report["models"]["base_gguf_status"] == "ok"
    shipped = report["shipped_bundle"]
    assert shipped["path"] == str(shipped_qwen) and shipped["applies"] is True
    assert shipped["vs_base"]["n"] >= 60 and shipped["trained_on"]
    if shipped["default"]:
        assert report["bundle"]["path"] == str(shipped_qwen)
    else:
        assert report["bundle"]["path"] is None and report["bundle"]["note"].startswith(shipped["why"])
    assert not any("bundle" in p for p in report["problems"]), report["problems"]


def test_doctor_reports_a_chosen_bundle_for_another_base_as_a_problem(
    embedded_base_gguf: Path, shipped: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    import shutil

    from bdc_assistant.commands.doctor import collect

    mine = tmp_path / "mine"
    shutil.copytree(shipped, mine)
    monkeypatch.setenv("BDC_BUNDLE__PATH", str(mine))
    report = collect(verify=False)
    assert report["bundle"]["path"] == str(mine)
    assert any("was made for base 'gemma-3-270m-q4_k_m.gguf'" in p for p in report["problems"])
