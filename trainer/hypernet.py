"""The ``hypernet`` stage: train only f (paper §4.2.3) through the app's hook mode, per-sample gates.

Everything but f is frozen: the base's parameters have ``requires_grad = False`` and the experts enter
only as the plain (non-leaf-free, grad-less) A_cat / B_cat tensors of :class:`GateHooks`. For every batch of
randomly permuted (p2t and t2s) pairs, f maps the problem's embedding e and its cosines to the K
centroids to g [B, L, K·r]; the hooks make each targeted Linear compute ``W0 x + B_cat (g_b ⊙ A_cat x)``
and the answer-token cross-entropy trains f. The hypernetwork sees the *problem* text for both stages,
which is what the app embeds at answer time.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from . import artifacts as art
from .modeling import device_info, eval_loss, load_base, total_steps, train_loop

if TYPE_CHECKING:
    from bdc_assistant.disen.torch_apply import GateHooks

    from .runner import Context


def assert_only_hypernet_trains(model: Any, hooks: GateHooks, hypernet: Any) -> None:
    """Fail loudly if anything but f would receive gradients (peft's set_adapter re-enables LoRA grads)."""
    bad = [n for n, p in model.named_parameters() if p.requires_grad]
    for store in (hooks._cat.A, hooks._cat.B):  # A_cat / B_cat must be plain tensors
        bad += [f"lora{key}" for key, t in store.items() if t.requires_grad]
    if bad:
        raise AssertionError(f"{len(bad)} non-hypernetwork tensors require grad, e.g. {bad[:3]}")
    if not any(p.requires_grad for p in hypernet.parameters()):
        raise AssertionError("the hypernetwork has no trainable parameters")


class GateFeeder:
    """Computes g = f(e, cos) for a batch of examples and hands it to the hooks (before each forward)."""

    def __init__(
        self,
        hooks: Any,
        hypernet: Any,
        embeddings: np.ndarray,
        centroids: np.ndarray,
        pair_problem: list[int],
        device: str,
        mode: str = "hypernet",
    ) -> None:
        import torch

        self.hooks = hooks
        self.hypernet = hypernet
        self.e = torch.from_numpy(np.asarray(embeddings, np.float32)).to(device)
        self.mu = torch.from_numpy(np.asarray(centroids, np.float32)).to(device)
        self.pair_problem = pair_problem
        self.mode = mode  # "hypernet" | "ones" | "base"

    def __call__(self, batch: list[Any]) -> None:
        import torch

        if self.mode == "base":
            self.hooks.set_gates(None)
            return
        idx = torch.tensor([self.pair_problem[ex.pair] for ex in batch], device=self.e.device)
        e = self.e[idx]
        if self.mode == "ones":
            width = self.hooks.width
            self.hooks.set_gates(torch.ones(len(batch), self.hooks.n_layers, width, device=e.device))
            return
        self.hooks.set_gates(self.hypernet(e, e @ self.mu.T))


def route_warmup(
    f: Any, e: np.ndarray, centroids: np.ndarray, labels: np.ndarray, *, steps: int, lr: float, high: float
) -> dict[str, Any]:
    """Start f from the clusters: fit its gates to "own cluster's expert at ``high``, the others at 1 − high".

    An addition to the paper (which trains f by the LM loss alone): on a CPU budget of a few dozen LM steps,
    f barely moves from its init and its gates ignore the input. This warm start costs no LM forward (it fits
    f's output to the cluster labels on the training problems' embeddings, full batch) and the LM-loss steps
    that follow still decide every rank's gate. With ``sigmoid`` it is a binary cross-entropy per gate; with
    ``softmax`` a cross-entropy over experts per (layer, rank) slot. Returns the fit's losses and its routing
    accuracy on the training problems.
    """
    import torch

    device = next(f.parameters()).device
    x = torch.from_numpy(np.asarray(e, np.float32)).to(device)
    cos = x @ torch.from_numpy(np.asarray(centroids, np.float32)).to(device).T
    y = torch.from_numpy(np.asarray(labels, np.int64)).to(device)
    n_layers, k, r = f.n_layers, f.n_experts, f.rank
    own = torch.nn.functional.one_hot(y, k).to(x.dtype)[:, None, :, None].expand(-1, n_layers, k, r)
    opt = torch.optim.Adam(f.parameters(), lr=lr)
    losses: list[float] = []
    f.train()
    for _ in range(steps):
        g = f(x, cos).reshape(len(x), n_layers, k, r)
        if f.normalization == "softmax":
            logp = torch.log(g.clamp_min(1e-8) / k)
            loss = -(own * logp).sum(dim=2).mean()
        else:
            target = own * high + (1 - own) * (1 - high)
            loss = torch.nn.functional.binary_cross_entropy(g.clamp(1e-6, 1 - 1e-6), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    f.eval()
    with torch.no_grad():
        per_expert = f(x, cos).reshape(len(x), n_layers, k, r).mean(dim=(1, 3))
        acc = float((per_expert.argmax(dim=1) == y).float().mean())
    return {"steps": steps, "loss_first": losses[0], "loss_last": losses[-1], "train_routing_accuracy": acc}


# ---- the stage -------------------------------------------------------------------------------------------


def stage_hypernet(ctx: Context) -> dict[str, Any]:
    import torch

    from bdc_assistant.disen.bundle import load_bundle, save_bundle
    from bdc_assistant.disen.hypernet import build_hypernet, state_to_numpy
    from bdc_assistant.disen.torch_apply import GateHooks

    cfg = ctx.cfg
    h = cfg.hypernet
    ref = art.base_ref(ctx)
    model, tok, device = load_base(ref, cfg)
    pad = int(tok.pad_token_id)
    pairs_tr, ex_tr, pairs_val, ex_val = art.encoded_examples(ctx, tok, ref.prompt_style, h.max_len)
    assign = art.assignments(ctx)
    k, r, n_layers = int(assign["k"]), cfg.lora.r, ref.n_layers
    cents = art.centroids(ctx)
    enc_info = art.encoder_info(ctx)
    d = int(enc_info["dim"])
    norm = h.normalization or "sigmoid"
    f = build_hypernet(d, k, n_layers, k, r, hidden=h.hidden, normalization=norm, seed=cfg.run.seed)
    if h.init_gate > 0 and norm in ("sigmoid", "none"):
        with torch.no_grad():
            f.out.bias.fill_(math.log(h.init_gate / (1 - h.init_gate)) if norm == "sigmoid" else h.init_gate)
    manifest = {
        "base": ref.identity,
        "encoder": enc_info,
        "K": k,
        "r": r,
        "target_modules": list(cfg.lora.target_modules),
        "use_rslora": cfg.lora.use_rslora,
        "lora_alpha": cfg.lora.alpha,
        "hypernet": f.config(),
        "clusters": {"names": assign["names"], "sizes": assign["sizes"]},
        "provenance": art.provenance(ctx),
        "metrics": {},
    }
    bdir = ctx.dir("hypernet") / "bundle"
    experts = art.expert_dirs(ctx)
    save_bundle(bdir, manifest=manifest, experts=experts, centroids=cents, hypernet_state=state_to_numpy(f))
    bundle = load_bundle(bdir, expect_base=None)

    encoder = art.encoder(ctx)
    train, val = art.records(ctx, "train"), art.records(ctx, "val")
    e_tr = art.embed(encoder, [x.problem for x in train], "embed problems")
    e_val = (
        art.embed(encoder, [x.problem for x in val], "embed problems")
        if val
        else np.zeros((0, d), np.float32)
    )
    f = f.to(device)
    warmup = None
    if h.route_warmup_steps:
        labels = np.asarray(assign["labels"])
        warmup = route_warmup(
            f,
            e_tr,
            bundle.centroids,
            labels,
            steps=h.route_warmup_steps,
            lr=h.route_warmup_lr,
            high=h.route_high,
        )
    with GateHooks(model, bundle) as hooks:
        feed_tr = GateFeeder(hooks, f, e_tr, bundle.centroids, [p.record for p in pairs_tr], device)
        feed_val = GateFeeder(hooks, f, e_val, bundle.centroids, [p.record for p in pairs_val], device)
        assert_only_hypernet_trains(model, hooks, f)
        bs = h.batch_size
        val_losses: dict[str, float | None] = {}
        with torch.no_grad():
            for mode in ("base", "ones"):
                feed_val.mode = mode
                val_losses[mode] = eval_loss(model, ex_val, pad, device, bs, before_forward=feed_val)
            feed_val.mode = "hypernet"
            val_losses["hypernet_init"] = eval_loss(model, ex_val, pad, device, bs, before_forward=feed_val)
        steps = total_steps(len(ex_tr), bs, 1, h.epochs, h.max_steps)
        f.train()
        losses = train_loop(
            model=model,
            params=list(f.parameters()),
            examples=ex_tr,
            pad_id=pad,
            device=device,
            steps=steps,
            batch_size=bs,
            grad_accum=1,
            lr=h.lr,
            weight_decay=0.0,
            warmup_ratio=0.05,
            seed=cfg.run.seed,
            desc="hypernet",
            before_forward=feed_tr,
        )
        f.eval()
        assert_only_hypernet_trains(model, hooks, f)
        val_losses["hypernet"] = eval_loss(model, ex_val, pad, device, bs, before_forward=feed_val)
        hooks.set_gates(None)
    # routing check: mean gate per expert for problems of each cluster (input-awareness, visible in the report)
    with torch.no_grad():
        et = torch.from_numpy(e_tr).to(device)
        g = f(et, et @ torch.from_numpy(bundle.centroids).to(device).T).cpu().numpy()  # [n, L, K·r]
    per_expert = g.reshape(len(train), n_layers, k, r).mean(axis=(1, 3))  # [n, K]
    labels = np.asarray(assign["labels"])
    routing = {
        assign["names"][j]: [round(float(x), 4) for x in per_expert[labels == j].mean(axis=0)]
        for j in range(k)
        if np.any(labels == j)
    }
    save_bundle(
        bdir,
        manifest=manifest,
        experts=experts,
        centroids=cents,
        hypernet_state=state_to_numpy(f),
        overwrite=True,
    )
    return {
        "steps": steps,
        "loss_first": losses[0],
        "loss_last": sum(losses[-5:]) / len(losses[-5:]),
        "val_loss": val_losses,
        "mean_gate_per_expert_by_cluster": routing,
        "route_warmup": warmup,
        "hypernet": f.config(),
        "only_hypernet_trained": True,
        "runtime": device_info(device),
    }
