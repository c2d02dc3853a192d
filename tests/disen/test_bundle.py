"""The solver-bundle contract: save → load round trip, and one clear sentence for every bad bundle."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from bdc_assistant.disen.bundle import load_bundle, save_bundle
from bdc_assistant.disen.identity import BaseIdentity, identity_of_hf_dir, shape_from_hf_dir
from bdc_assistant.disen.random_bundle import make_random_bundle
from bdc_assistant.disen.safetensors_io import read_safetensors
from bdc_assistant.errors import BundleError


@pytest.fixture()
def bundle_copy(tiny_bundles, tmp_path) -> Path:
    dst = tmp_path / "b"
    shutil.copytree(tiny_bundles["llama"], dst, ignore=shutil.ignore_patterns("adapter_template*"))
    return dst


def _one_sentence(err: BundleError) -> str:
    msg = str(err)
    assert msg.endswith("."), msg
    assert "\n" not in msg
    return msg


def test_round_trip(tiny_models, bundle_copy):
    bundle = load_bundle(bundle_copy)
    shape = shape_from_hf_dir(tiny_models["llama"].hf_dir)
    assert (bundle.K, bundle.r, bundle.n_layers) == (3, 4, 2)
    assert bundle.targets == ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    assert bundle.base.hf_config_hash == shape.config_hash()
    assert bundle.shapes["k_proj"] == (64, 32) and bundle.shapes["down_proj"] == (128, 64)
    assert np.allclose(np.linalg.norm(bundle.centroids, axis=1), 1.0, atol=1e-6)
    manifest = json.loads((bundle_copy / "manifest.json").read_text())
    assert manifest["format_version"] == 1 and "created_at" in manifest["provenance"]
    assert set(manifest["files"]) >= {
        "centroids.safetensors",
        "hypernet.safetensors",
        "experts/expert_2/adapter_model.safetensors",
    }
    cfg = json.loads((bundle_copy / "experts/expert_0/adapter_config.json").read_text())
    assert cfg["peft_type"] == "LORA" and cfg["r"] == 4


def test_expect_base_accepts_same_and_refuses_other(tiny_models, bundle_copy):
    same, _ = identity_of_hf_dir(tiny_models["llama"].hf_dir)
    assert load_bundle(bundle_copy, expect_base=same).K == 3
    other, _ = identity_of_hf_dir(tiny_models["gemma3"].hf_dir)
    with pytest.raises(BundleError) as err:
        load_bundle(bundle_copy, expect_base=other)
    assert "made for base" in _one_sentence(err.value)
    bundle = load_bundle(bundle_copy)
    wrong_gguf = BaseIdentity(**{**bundle.base.as_dict(), "gguf_sha256": "0" * 64})
    with_sha = BaseIdentity(**{**bundle.base.as_dict(), "gguf_sha256": "1" * 64})
    assert wrong_gguf.mismatch(with_sha) is not None
    with pytest.raises(BundleError):
        load_bundle(bundle_copy, expect_base=BaseIdentity(**{**bundle.base.as_dict(), "n_layers": 3}))


def test_truncated_tensor_is_refused(bundle_copy):
    target = bundle_copy / "experts/expert_1/adapter_model.safetensors"
    target.write_bytes(target.read_bytes()[:-100])
    with pytest.raises(BundleError) as err:
        load_bundle(bundle_copy)
    assert "truncated" in _one_sentence(err.value)


def test_truncated_safetensors_detected_by_reader(bundle_copy):
    """Even when the digest table is consistent, the reader itself names a cut-off tensor."""
    target = bundle_copy / "hypernet.safetensors"
    cut = bundle_copy / "cut.safetensors"
    cut.write_bytes(target.read_bytes()[:-7])
    with pytest.raises(BundleError) as err:
        read_safetensors(cut)
    assert "truncated" in _one_sentence(err.value)


def test_wrong_k_is_refused(bundle_copy):
    manifest_path = bundle_copy / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["K"] = 2
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(BundleError) as err:
        load_bundle(bundle_copy)
    assert "K=2" in _one_sentence(err.value)
    manifest["K"] = 4
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(BundleError) as err:
        load_bundle(bundle_copy)
    assert "K=4" in _one_sentence(err.value)


def test_missing_expert_file_and_bad_manifest(bundle_copy, tmp_path):
    with pytest.raises(BundleError, match="does not exist"):
        load_bundle(tmp_path / "nowhere")
    (bundle_copy / "experts/expert_0/adapter_config.json").unlink()
    with pytest.raises(BundleError, match="missing"):
        load_bundle(bundle_copy)
    (bundle_copy / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        load_bundle(bundle_copy)
    (bundle_copy / "manifest.json").write_text(json.dumps({"format_version": 2}))
    with pytest.raises(BundleError, match="format version 2"):
        load_bundle(bundle_copy)


def test_wrong_rank_in_expert_is_refused(tiny_models, tmp_path):
    """An expert whose tensors do not have rank r (manifest digests kept consistent) is refused."""
    src = make_random_bundle(tiny_models["llama"].hf_dir, tmp_path / "src", K=2, r=4, seed=1)
    other = make_random_bundle(tiny_models["llama"].hf_dir, tmp_path / "r8", K=2, r=8, seed=1)
    manifest = json.loads((src / "manifest.json").read_text())
    manifest.pop("files")
    experts = [src / "experts/expert_0", other / "experts/expert_1"]
    save_bundle(
        tmp_path / "mixed",
        manifest=manifest,
        experts=experts,
        centroids=read_safetensors(src / "centroids.safetensors")["centroids"],
        hypernet_state=read_safetensors(src / "hypernet.safetensors"),
    )
    with pytest.raises(BundleError) as err:
        load_bundle(tmp_path / "mixed")
    assert "rank 8" in _one_sentence(err.value)


def test_save_refuses_k_mismatch_and_nonempty_dir(bundle_copy, tmp_path):
    manifest = json.loads((bundle_copy / "manifest.json").read_text())
    state = read_safetensors(bundle_copy / "hypernet.safetensors")
    cents = read_safetensors(bundle_copy / "centroids.safetensors")["centroids"]
    with pytest.raises(BundleError, match="K=3"):
        save_bundle(
            tmp_path / "x",
            manifest=manifest,
            experts=[bundle_copy / "experts/expert_0"],
            centroids=cents,
            hypernet_state=state,
        )
    experts = [bundle_copy / f"experts/expert_{k}" for k in range(3)]
    with pytest.raises(BundleError, match="not empty"):
        save_bundle(bundle_copy, manifest=manifest, experts=experts, centroids=cents, hypernet_state=state)
    out = save_bundle(
        tmp_path / "copy", manifest=manifest, experts=experts, centroids=cents, hypernet_state=state
    )
    assert load_bundle(out).K == 3
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".copy")]  # no temp dir left behind


def test_bf16_expert_from_torch_state_dict(tiny_models, bundle_copy, tmp_path):
    """GPU-trained peft experts are often bf16; save_bundle takes torch tensors and the reader takes bf16."""
    import torch
    from safetensors.torch import save_file

    src = read_safetensors(bundle_copy / "experts/expert_0/adapter_model.safetensors")
    bf16 = {k: torch.from_numpy(v).to(torch.bfloat16) for k, v in src.items()}
    save_file(bf16, str(tmp_path / "bf16.safetensors"))
    back = read_safetensors(tmp_path / "bf16.safetensors")
    for k, v in src.items():
        assert np.allclose(back[k], bf16[k].float().numpy())
        assert np.abs(back[k] - v).max() <= np.abs(v).max() * 2**-7
    manifest = json.loads((bundle_copy / "manifest.json").read_text())
    out = save_bundle(
        tmp_path / "torch_sd",
        manifest=manifest,
        experts=[bf16, bf16, bf16],
        centroids=torch.randn(3, 384),
        hypernet_state=read_safetensors(bundle_copy / "hypernet.safetensors"),
    )
    assert load_bundle(out).experts[2].A[(1, "v_proj")].dtype == np.float32


@pytest.mark.parametrize("arch", ["llama", "gemma3", "qwen2"])
def test_gguf_hf_and_llama_metadata_give_the_same_identity(arch, tiny_models):
    """A GGUF and the HF dir with the same weights hash alike, so both backends accept the same bundles."""
    from bdc_assistant.disen.identity import identity_of_gguf, shape_from_gguf, shape_from_llama_metadata

    from .conftest import open_llama

    tm = tiny_models[arch]
    from_gguf, _ = identity_of_gguf(tm.gguf_path)
    from_hf, _ = identity_of_hf_dir(tm.hf_dir)
    assert from_gguf.hf_config_hash == from_hf.hf_config_hash
    assert from_gguf.gguf_sha256 and from_hf.gguf_sha256 is None
    assert from_gguf.mismatch(from_hf) is None
    llm = open_llama(tm.gguf_path)
    try:
        assert shape_from_llama_metadata(llm.metadata, llm.n_vocab()) == shape_from_gguf(tm.gguf_path)
    finally:
        llm.close()


def test_expert_dirs_copied_into_a_bundle_name_the_base_not_a_local_path(bundle_copy, tmp_path):
    """peft writes the trainer's local base path into adapter_config.json; a shared bundle must not carry it."""
    manifest = json.loads((bundle_copy / "manifest.json").read_text())
    state = read_safetensors(bundle_copy / "hypernet.safetensors")
    cents = read_safetensors(bundle_copy / "centroids.safetensors")["centroids"]
    experts = []
    for k in range(3):
        src = tmp_path / f"peft_{k}"
        shutil.copytree(bundle_copy / f"experts/expert_{k}", src)
        cfg = json.loads((src / "adapter_config.json").read_text())
        cfg["base_model_name_or_path"] = "/home/someone/.cache/models/hf-0123"
        (src / "adapter_config.json").write_text(json.dumps(cfg))
        experts.append(src)
    out = save_bundle(
        tmp_path / "shared", manifest=manifest, experts=experts, centroids=cents, hypernet_state=state
    )
    for k in range(3):
        cfg = json.loads((out / f"experts/expert_{k}/adapter_config.json").read_text())
        assert cfg["base_model_name_or_path"] == manifest["base"]["name"]
        assert (out / f"experts/expert_{k}/adapter_model.safetensors").read_bytes() == (
            experts[k] / "adapter_model.safetensors"
        ).read_bytes()
    assert "/home/someone" not in "".join(p.read_text() for p in out.rglob("*.json"))
    assert load_bundle(out).K == 3
