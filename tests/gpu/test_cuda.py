"""CUDA paths of the torch runtime (marked ``gpu``; skipped where no CUDA GPU is visible, as in CI).

On a tiny random Llama: merge mode and hook mode on the GPU give the logits of the CPU merge within fp32
tolerance (TF32 off), bf16 weights get ΔW = s·B·diag(g)·A rounded once, and hook-mode gates on the GPU
receive gradients while no LoRA tensor does — the property the hypernetwork training relies on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bdc_assistant.disen.bundle import Bundle, load_bundle
from bdc_assistant.disen.compose import Customization
from bdc_assistant.disen.random_bundle import make_random_bundle
from bdc_assistant.disen.torch_apply import GateHooks, TorchMergeSlot


def _cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not _cuda(), reason="needs a CUDA GPU")]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Bundle]:
    from bdc_assistant.models.tiny import build_tiny

    root = tmp_path_factory.mktemp("gpu_tiny")
    tm = build_tiny("llama", root / "llama", seed=0)
    bundle = load_bundle(make_random_bundle(tm.hf_dir, root / "bundle", K=3, r=4, seed=7, scale=0.1))
    return tm.hf_dir, bundle


def _load(hf_dir: Path, device: str, dtype: Any) -> Any:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(hf_dir, dtype=dtype).to(device).eval()


def _logits(model: Any, ids: list[int]) -> np.ndarray:
    import torch

    with torch.no_grad():
        x = torch.tensor([ids], device=model.device)
        return model(x).logits[0].double().cpu().numpy()


def _g(bundle: Bundle, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(0.0, 1.0, (bundle.n_layers, bundle.K * bundle.r)).astype(np.float32)


IDS = [5, 17, 42, 7, 99, 3, 61, 12, 88, 23, 45, 9]


def test_merge_and_hook_on_cuda_match_the_cpu_merge(tiny: tuple[Path, Bundle]) -> None:
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    hf_dir, bundle = tiny
    g = _g(bundle, 1)
    custom = Customization.from_g(bundle, g)

    cpu = _load(hf_dir, "cpu", torch.float32)
    cpu_slot = TorchMergeSlot(cpu)
    base_cpu = _logits(cpu, IDS)
    cpu_slot.apply(custom)
    want = _logits(cpu, IDS)
    effect = float(np.abs(want - base_cpu).max())
    assert effect >= 0.3, f"the random adapter barely moves the logits ({effect})"

    gpu = _load(hf_dir, "cuda", torch.float32)
    slot = TorchMergeSlot(gpu)
    assert slot.apply(custom) >= 0.0
    merged = _logits(gpu, IDS)
    assert np.abs(merged - want).max() < 1e-3
    slot.clear()
    assert np.abs(_logits(gpu, IDS) - base_cpu).max() < 1e-3  # clear restores W0 on the device

    with GateHooks(gpu, bundle) as hooks:
        hooks.set_gates(torch.tensor(g, device="cuda")[None])
        hooked = _logits(gpu, IDS)
    assert np.abs(hooked - want).max() < 1e-3
    assert (hooked.argmax(-1) == want.argmax(-1)).all()


def test_bf16_merge_on_cuda_rounds_once(tiny: tuple[Path, Bundle]) -> None:
    import torch

    from bdc_assistant.disen.torch_apply import find_targets

    hf_dir, bundle = tiny
    g = _g(bundle, 2)
    model = _load(hf_dir, "cuda", torch.bfloat16)
    key = sorted(bundle.cat.A)[0]
    w0 = find_targets(model)[key].weight.detach().float().cpu().numpy().astype(np.float64)
    slot = TorchMergeSlot(model)
    slot.apply(Customization.from_g(bundle, g))
    a, b = bundle.cat.A[key].astype(np.float64), bundle.cat.B[key].astype(np.float64)
    want = b @ (g[key[0]].astype(np.float64)[:, None] * a)
    got = slot.current_delta(*key)
    # W0 + ΔW summed in fp32 and rounded to bf16 once: off by at most half a bf16 ulp of |W|, 2^-9 relative
    ulp = np.abs(w0 + want).max() * 2.0**-8
    assert np.abs(got - want).max() <= ulp
    assert np.abs(want).max() > 10 * ulp  # so a missing or transposed ΔW could not pass


def test_hook_mode_gradients_reach_the_gates_only(tiny: tuple[Path, Bundle]) -> None:
    import torch

    hf_dir, bundle = tiny
    model = _load(hf_dir, "cuda", torch.float32)
    for p in model.parameters():
        p.requires_grad_(False)
    hooks = GateHooks(model, bundle)
    try:
        g = torch.full((2, bundle.n_layers, bundle.K * bundle.r), 0.5, device="cuda", requires_grad=True)
        hooks.set_gates(g)
        x = torch.tensor([IDS, IDS[::-1]], device="cuda")
        out = model(x, labels=x)
        out.loss.backward()
    finally:
        hooks.remove()
    assert g.grad is not None and torch.isfinite(g.grad).all() and g.grad.abs().sum() > 0
    # per-sample gates: the two samples get different gradients
    assert not torch.allclose(g.grad[0], g.grad[1])
    assert all(p.grad is None for p in model.parameters())
