"""The ``hypernet`` stage: train only f (paper §4.2.3) through the app's hook mode, per-sample gates.

Everything but f is frozen: the base's parameters have ``requires_grad = False`` and the experts enter
only as the plain (non-leaf-free, grad-less) A_cat / B_cat tensors of :class:`GateHooks`. For every batch of
randomly permuted (p2t and t2s) pairs, f maps the problem's embedding e and its cosines to the K
centroids to g [B, L, K·r]; the hooks make each targeted Linear compute ``W0 x + B_cat (g_b ⊙ A_cat x)``
and the answer-token cross-entropy trains f. The hypernetwork sees the *problem* text for both stages,
which is what the app embeds at answer time.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def assert_only_hypernet_trains(model: Any, hooks: Any, hypernet: Any) -> None:
    """Fail loudly if anything but f would receive gradients (peft's set_adapter re-enables LoRA grads)."""
    bad = [n for n, p in model.named_parameters() if p.requires_grad]
    cache = getattr(hooks, "_cat", None)
    for store in (getattr(cache, "A", {}), getattr(cache, "B", {})):
        bad += [f"lora{key}" for key, t in store.items() if getattr(t, "requires_grad", False)]
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
