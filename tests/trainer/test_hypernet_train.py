"""Training only f through hook mode: gradients reach f and nothing else; the loss goes down."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from trainer.config import load_config
from trainer.data import synthetic
from trainer.hypernet import GateFeeder, assert_only_hypernet_trains
from trainer.modeling import BaseRef, encode, eval_loss, load_base, train_loop
from trainer.pairs import build_pairs


@pytest.fixture()
def setup(tiny_llama, tmp_path: Path):
    from bdc_assistant.disen.bundle import load_bundle
    from bdc_assistant.disen.hypernet import build_hypernet
    from bdc_assistant.disen.identity import identity_of_hf_dir
    from bdc_assistant.disen.random_bundle import make_random_bundle

    ident, _ = identity_of_hf_dir(tiny_llama.hf_dir)
    cfg = load_config(None, ["base.device='cpu'"])
    model, tok, _device = load_base(BaseRef(str(tiny_llama.hf_dir), None, ident.as_dict(), "completion"), cfg)
    bundle = load_bundle(
        make_random_bundle(
            tiny_llama.hf_dir, tmp_path / "b", K=2, r=2, seed=3, scale=0.5, embed_dim=8, hidden=8
        )
    )
    records = synthetic(4, seed=0)
    pairs = build_pairs(records, "completion")
    examples = encode(tok, pairs, max_len=160, style="completion")
    emb = np.random.default_rng(0).normal(size=(len(records), 8)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    f = build_hypernet(8, 2, bundle.n_layers, 2, 2, hidden=8, seed=0)
    return model, tok, bundle, examples, pairs, emb, f


def test_only_f_trains_and_the_loss_drops(setup) -> None:
    from bdc_assistant.disen.torch_apply import GateHooks

    model, tok, bundle, examples, pairs, emb, f = setup
    before = {k: v.clone() for k, v in model.state_dict().items()}
    f0 = {k: v.clone() for k, v in f.state_dict().items()}
    pad = int(tok.pad_token_id)
    with GateHooks(model, bundle) as hooks:
        feed = GateFeeder(hooks, f, emb, bundle.centroids, [p.record for p in pairs], "cpu")
        assert_only_hypernet_trains(model, hooks, f)
        start = eval_loss(model, examples, pad, "cpu", 4, before_forward=feed)
        losses = train_loop(
            model=model,
            params=list(f.parameters()),
            examples=examples,
            pad_id=pad,
            device="cpu",
            steps=25,
            batch_size=4,
            grad_accum=1,
            lr=5e-2,
            weight_decay=0.0,
            warmup_ratio=0.0,
            seed=0,
            desc="t",
            before_forward=feed,
        )
        end = eval_loss(model, examples, pad, "cpu", 4, before_forward=feed)
        feed.mode = "base"
        base = eval_loss(model, examples, pad, "cpu", 4, before_forward=feed)
    assert len(losses) == 25
    assert end < start - 1e-3, (start, end)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # base untouched
    assert any(not torch.equal(f0[k], v) for k, v in f.state_dict().items())  # f moved
    assert all(p.grad is None for p in model.parameters())
    with torch.no_grad():  # with the hooks removed the model is the plain base again
        from trainer.modeling import collate

        plain = model(**collate(examples, pad, "cpu")).loss.item()
    assert base == pytest.approx(plain, rel=1e-4)


def test_a_trainable_lora_or_base_tensor_is_refused(setup) -> None:
    from bdc_assistant.disen.torch_apply import GateHooks

    model, _, bundle, _, _, _, f = setup
    with GateHooks(model, bundle) as hooks:
        next(iter(hooks._cat.A.values())).requires_grad_(True)
        with pytest.raises(AssertionError, match="require grad"):
            assert_only_hypernet_trains(model, hooks, f)
    with GateHooks(model, bundle) as hooks:
        next(model.parameters()).requires_grad_(True)
        with pytest.raises(AssertionError, match="require grad"):
            assert_only_hypernet_trains(model, hooks, f)
