"""Bundles and the base they customize: the shipped gemma-3-270m bundle on the Qwen2.5-Coder base.

The shipped bundle (``assets/bundles/default``) was trained for gemma-3-270m. On the Qwen base it is not
the default any more: the app answers with the plain base and says so once (``NO_BUNDLE_FOR_BASE``,
also what ``bdc doctor`` reports). Loading it explicitly on the Qwen base refuses with one sentence that
names both bases. On gemma it still loads (the gemma tests keep using it).
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
    path = bundles.shipped_bundle_dir()
    assert path is not None, "this build ships a default bundle"
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


def test_shipped_bundle_is_not_the_default_on_qwen(shipped: Path, qwen_id: BaseIdentity):
    assert bundles.shipped_bundle_dir(qwen_id) is None
    assert bundles.active_entry(qwen_id) is None  # fresh registry: the shipped entry does not count
    assert bundles.active_bundle_info(qwen_id) is None
    assert bundles.fit_to_base(shipped, "shipped default bundle", qwen_id) == (
        None,
        bundles.NO_BUNDLE_FOR_BASE,
    )
    assert bundles.base_mismatch(shipped, qwen_id) is not None


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


def test_doctor_names_the_base_and_says_no_bundle_for_it(embedded_base_gguf: Path):
    from bdc_assistant.commands.doctor import collect

    report = collect(verify=True)
    base = report["base"]
    assert base["name"] == "Qwen2.5-Coder-0.5B-Instruct Q4_K_M" and base["solver"] == "coder-0.5b"
    assert base["sha256"] == "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
    assert base["sha256_verified"] is True and base["license"] == "Apache-2.0"
    assert report["models"]["base_gguf"] == str(embedded_base_gguf)
    assert report["models"]["base_gguf_status"] == "ok"
    assert report["bundle"]["path"] is None
    assert report["bundle"]["note"] == "no bundle for this base: answering with the plain base"
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
