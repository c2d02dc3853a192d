"""TIES / DARE on full ΔW, the SVD back to LoRA form, and one-expert static bundles with g ≡ 1."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from bdc_assistant.disen.bundle import load_bundle
from trainer.merges import merge_delta, merge_experts, read_adapter
from trainer.static import save_static_bundle


def _deltas(dirs: list[Path]) -> dict:
    out: dict = {}
    for d in dirs:
        ab, s, _ = read_adapter(d)
        for key, (a, b) in ab.items():
            out.setdefault(key, []).append(s * b.astype(np.float64) @ a.astype(np.float64))
    return out


def test_ties_of_identical_experts_is_the_expert_and_dare_is_seeded() -> None:
    d = torch.randn(6, 5)
    merged = merge_delta([d, d.clone()], "ties", density=1.0, seed=0)
    assert torch.allclose(merged, d, atol=1e-6)
    one = merge_delta([d, d * 2], "dare", density=0.5, seed=3)
    assert torch.equal(one, merge_delta([d, d * 2], "dare", density=0.5, seed=3))  # same seed, same result
    assert not torch.equal(one, merge_delta([d, d * 2], "dare", density=0.5, seed=4))  # the seed matters
    kept = (one != 0).float().mean()
    assert 0.5 < kept < 1.0  # roughly 1-(1-p)^2 of the entries survive in at least one expert
    with pytest.raises(ValueError):
        merge_delta([d], "twin", 1.0, 0)


def test_ties_elects_sign_by_total_mass_and_averages_the_agreeing() -> None:
    a = torch.tensor([[3.0, -1.0, 0.1, 2.0]])
    b = torch.tensor([[1.0, -2.0, -0.1, -5.0]])
    merged = merge_delta([a, b], "ties", density=1.0, seed=0)  # density 1: nothing is trimmed
    # column sums 4, -3, 0, -3 elect +, -, + (0 counts as +), -; the agreeing entries are averaged
    assert torch.allclose(merged, torch.tensor([[2.0, -1.5, 0.1, -5.0]]))


def test_ties_trims_each_expert_to_its_largest_entries_first() -> None:
    a = torch.tensor([[3.0, -1.0, 0.1, 2.0]])
    b = torch.tensor([[1.0, -2.0, -0.1, -5.0]])
    merged = merge_delta([a, b], "ties", density=0.5, seed=0)
    # density 0.5 keeps 2 of 4 entries per expert by magnitude: a → [3, 0, 0, 2], b → [0, -2, 0, -5];
    # column sums 3, -2, 0, -3 elect +, -, +, -; a's 2 disagrees in column 3 and is dropped
    assert torch.allclose(merged, torch.tensor([[3.0, -2.0, 0.0, -5.0]]))


def test_merge_export_is_exact_at_full_rank(two_experts: list[Path], tmp_path: Path) -> None:
    ref = _deltas(two_experts)
    info = merge_experts(two_experts, "ties", density=1.0, rank=64, seed=0, out_dir=tmp_path / "ties")
    assert info["svd_relative_error"] < 1e-5
    got = _deltas([tmp_path / "ties"])
    for key, (d0, d1) in ref.items():
        expect = merge_delta(
            [torch.from_numpy(d0).float(), torch.from_numpy(d1).float()], "ties", 1.0, 0
        ).double()
        assert np.allclose(got[key][0], expect.numpy(), atol=1e-4)
    cfg = json.loads((tmp_path / "ties" / "adapter_config.json").read_text())
    assert cfg["r"] == 64 and cfg["lora_alpha"] == 64.0 and cfg["use_rslora"] is False


def test_low_rank_export_reports_its_error(two_experts: list[Path], tmp_path: Path) -> None:
    info = merge_experts(two_experts, "dare", density=0.5, rank=2, seed=0, out_dir=tmp_path / "dare")
    assert 0.0 < info["svd_relative_error"] < 1.0


def test_static_bundle_gates_are_ones_and_delta_is_the_adapter(
    tiny_llama, two_experts: list[Path], tmp_path: Path
) -> None:
    from bdc_assistant.disen.compose import reference_delta
    from bdc_assistant.disen.identity import identity_of_hf_dir

    ident, _ = identity_of_hf_dir(tiny_llama.hf_dir)
    out = save_static_bundle(
        tmp_path / "static",
        two_experts[0],
        base=ident.as_dict(),
        encoder={"name": "enc", "dim": 8},
        centroid=np.ones(8),
        name="e0",
        provenance={"data_hash": "x"},
    )
    b = load_bundle(out, expect_base=ident)
    assert b.K == 1 and b.manifest["provenance"]["static"] is True
    g, _ = b.gates_for(np.eye(8, dtype=np.float32)[3])
    assert np.array_equal(g, np.ones_like(g))
    ref = _deltas([two_experts[0]])
    for (layer, module), (d,) in ref.items():
        assert np.allclose(reference_delta(b.experts, g, layer, module), d, atol=1e-5)


def test_ties_export_trims_at_the_given_density(two_experts: list[Path], tmp_path: Path) -> None:
    """The density reaches the merge through merge_experts (not only merge_delta): at full rank the exported
    TIES adapter at density 0.5 is the trimmed merge, and differs from the untrimmed one."""
    ref = _deltas(two_experts)
    merge_experts(two_experts, "ties", density=0.5, rank=64, seed=0, out_dir=tmp_path / "half")
    merge_experts(two_experts, "ties", density=1.0, rank=64, seed=0, out_dir=tmp_path / "full")
    half, full = _deltas([tmp_path / "half"]), _deltas([tmp_path / "full"])
    differs = 0.0
    for key, (d0, d1) in ref.items():
        pair = [torch.from_numpy(d0).float(), torch.from_numpy(d1).float()]
        trimmed = merge_delta(pair, "ties", 0.5, 0).double().numpy()
        assert np.allclose(half[key][0], trimmed, atol=1e-4)
        # trimming keeps half of each expert's entries, so about half of the merged ones are zero
        assert 0.2 < float(np.mean(trimmed == 0)) < 0.8
        differs = max(differs, float(np.abs(half[key][0] - full[key][0]).max()))
    assert differs > 1e-3
