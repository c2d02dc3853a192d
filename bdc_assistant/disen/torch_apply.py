"""Per-query DisenLoRA on torch/transformers: merge mode (inference) and hook mode (training, batches).

Merge mode (:class:`TorchMergeSlot`): keep a pristine copy of every targeted W0; per query
W = W0 + B_cat·diag(g[ℓ])·A_cat, then generation runs at exactly the base model's speed (zero per-token
overhead). A projection repeated across layers is stacked into one [L, out, in] tensor that the modules read
views of, so one batched GEMM merges it in every layer (4.3 ms for the 0.5B's 168 matrices on an H200). The
restore always starts from the pristine copy, so many swaps never accumulate rounding error (peft's
merge/unmerge does, in bf16).

Hook mode (:class:`GateHooks`): every targeted Linear computes ``W0 x + B_cat (g_b ⊙ (A_cat x))`` with a
per-sample gate g_b = g[b, ℓ]; gradients flow into g (the trainer trains the hypernetwork through it).
A_cat / B_cat are plain tensors without ``requires_grad``: nothing but g (and what produced it) trains.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..errors import BundleError
from . import modules as mods
from .bundle import Bundle
from .compose import Customization


def find_targets(model: Any, targets: tuple[str, ...] = mods.TARGET_MODULES) -> dict[tuple[int, str], Any]:
    """(layer, module) → the nn.Linear holding W0 (a peft LoraLayer's ``base_layer`` is unwrapped)."""
    found: dict[tuple[int, str], Any] = {}
    for name, module in model.named_modules():
        m = mods.HF_MODULE.search(name)
        if m is None or m.group(3) not in targets:
            continue
        if "vision" in name:  # multimodal Gemma-3: only the language model carries experts
            continue
        linear = getattr(module, "base_layer", module)
        if not hasattr(linear, "weight"):
            continue
        found[(int(m.group(1)), m.group(3))] = linear
    return found


class _CatCache:
    """A_cat / B_cat of one bundle as torch tensors on the weights' device (fp32), built once."""

    def __init__(self) -> None:
        self._bundle_id: str | None = None
        self.A: dict[tuple[int, str], Any] = {}
        self.B: dict[tuple[int, str], Any] = {}

    def get(
        self,
        bundle: Bundle,
        linears: dict[tuple[int, str], Any],
        config_hash: str | None = None,
        model_name: str = "",
    ) -> _CatCache:
        import torch

        if self._bundle_id == bundle.bundle_id:
            return self
        _check_fit(bundle, linears, config_hash, model_name)
        cat = bundle.cat
        self.A, self.B = {}, {}
        for key in cat.layer_modules():
            dev = linears[key].weight.device
            self.A[key] = torch.from_numpy(cat.A[key]).to(dev)
            self.B[key] = torch.from_numpy(cat.B[key]).to(dev)
        self._bundle_id = bundle.bundle_id
        return self


def model_name(model: Any) -> str:
    """The loaded model's directory name (for messages that name both bases)."""
    from pathlib import Path

    path = str(getattr(getattr(model, "config", None), "_name_or_path", "") or "")
    return Path(path).name if path else type(model).__name__


def model_config_hash(model: Any) -> str | None:
    """hf_config_hash of a loaded transformers model (None for an unsupported or odd config)."""
    from ..errors import ModelError
    from .identity import shape_from_hf_config

    config = getattr(model, "config", None)
    if config is None or not hasattr(config, "to_dict"):
        return None
    try:
        return shape_from_hf_config(config.to_dict()).config_hash()
    except (ModelError, KeyError, TypeError, ValueError):
        return None


def _check_fit(
    bundle: Bundle, linears: dict[tuple[int, str], Any], config_hash: str | None = None, model_name: str = ""
) -> None:
    layers = {layer for layer, _ in linears}
    n_model = max(layers) + 1 if layers else 0
    loaded = f"'{model_name or 'the loaded torch model'}' ({n_model} layers)"
    if config_hash is not None and config_hash != bundle.base.hf_config_hash:
        raise BundleError(
            f"The solver bundle {bundle.path} was made for base '{bundle.base.name}' "
            f"({bundle.n_layers}-layer {bundle.base.arch}, architecture config differs); "
            f"it cannot customize {loaded}."
        )
    if n_model != bundle.n_layers:
        raise BundleError(
            f"The solver bundle {bundle.path} was made for base '{bundle.base.name}' "
            f"({bundle.n_layers} layers); it cannot customize {loaded}."
        )
    for key in bundle.cat.layer_modules():
        lin = linears.get(key)
        want = (bundle.cat.B[key].shape[0], bundle.cat.A[key].shape[1])
        if lin is None or tuple(lin.weight.shape) != want:
            got = None if lin is None else tuple(lin.weight.shape)
            raise BundleError(
                f"The solver bundle {bundle.path} expects layer {key[0]} {key[1]} shaped {want}, the model has {got}."
            )


class _Stack:
    """One projection of many layers rebound as views of a single ``[L, out, in]`` tensor.

    Why: a per-matrix merge costs about six small kernels per matrix (15 ms on an H100 for gemma's 126
    matrices); with the layers stacked, one batched GEMM (``baddbmm``) merges a whole projection, so a
    query pays a handful of kernels however deep the model is.
    """

    def __init__(self, linears: list[Any]) -> None:
        import torch

        with torch.no_grad():
            self.w = torch.stack([lin.weight.detach() for lin in linears])
            for i, lin in enumerate(linears):
                lin.weight.data = self.w[i]  # the module now reads its slice of the stack
        self.linears = linears
        self.w0: Any = None
        self.dirty = False

    def intact(self) -> bool:
        """Whether every module still reads its slice (``model.to(...)`` or a reload replaces the tensors)."""
        return all(lin.weight.data_ptr() == self.w[i].data_ptr() for i, lin in enumerate(self.linears))

    def pristine(self) -> Any:
        if self.w0 is None:
            self.w0 = self.w.detach().clone()
        return self.w0

    def restore(self) -> None:
        """Every layer back to W0 (nothing to do when no merge touched the stack)."""
        if self.dirty:
            self.w.copy_(self.w0)
            self.dirty = False


class _StackPlan:
    """What one bundle adds to one stack: positions in the stack, their layers, A_cat/B_cat stacked, and the
    pieces a merge walks (built once per bundle, not per query)."""

    def __init__(
        self, stack: _Stack, positions: list[int], layers: list[int], a: list[Any], b: list[Any]
    ) -> None:
        import torch

        self.positions = positions
        self.layers = torch.tensor(layers, device=a[0].device)
        self.A = torch.stack(a)  # [n, K·r, in]
        self.B = torch.stack(b)  # [n, out, K·r]
        # (stack index: slice or tensor, slice into this plan) pieces of ≤ _CHUNK_ELEMENTS fp32 each
        step = max(1, _CHUNK_ELEMENTS // max(stack.w.shape[1] * stack.w.shape[2], 1))
        self.chunks: list[tuple[Any, slice]] = []
        for lo in range(0, len(positions), step):
            pos = positions[lo : lo + step]
            contiguous = pos[-1] - pos[0] + 1 == len(pos)
            where = slice(pos[0], pos[-1] + 1) if contiguous else torch.tensor(pos, device=self.A.device)
            self.chunks.append((where, slice(lo, lo + len(pos))))


# fp32 elements one batched merge may hold as a temporary (256 MB): bounds memory on big bf16 models
_CHUNK_ELEMENTS = 1 << 26


class TorchMergeSlot:
    """Merge-per-query customization of a transformers model (``apply`` / ``clear``).

    Projections that repeat across layers with one shape are stacked (:class:`_Stack`) and merged with one
    batched GEMM each; a projection that appears once keeps the per-matrix merge.
    """

    def __init__(self, model: Any) -> None:
        self._model = model
        self._linears = find_targets(model)
        if not self._linears:
            raise BundleError("The loaded torch model has no q/k/v/o/gate/up/down projections to customize.")
        self._stacks: list[_Stack] = []
        self._stack_of: dict[tuple[int, str], tuple[_Stack, int]] = {}
        self._stack_targets()
        self._pristine: dict[tuple[int, str], Any] = {}  # per-matrix copies of unstacked W0
        self._dirty: set[tuple[int, str]] = set()
        self._cat = _CatCache()
        self._plans: dict[int, _StackPlan] = {}  # id(stack) -> this bundle's plan
        self._plans_for: str | None = None
        self._config_hash = model_config_hash(model)
        self.active: Customization | None = None
        self.last_ms = 0.0

    def _stack_targets(self) -> None:
        groups: dict[tuple[Any, ...], list[tuple[int, str]]] = {}
        for key, lin in sorted(self._linears.items()):
            w = lin.weight
            groups.setdefault((key[1], tuple(w.shape), w.dtype, w.device), []).append(key)
        for keys in groups.values():
            if len(keys) < 2:
                continue
            stack = _Stack([self._linears[k] for k in keys])
            self._stacks.append(stack)
            for i, key in enumerate(keys):
                self._stack_of[key] = (stack, i)

    def _plan(self, cat: _CatCache, bundle_id: str) -> None:
        if self._plans_for == bundle_id:
            return
        parts: dict[int, tuple[_Stack, list[int], list[int], list[Any], list[Any]]] = {}
        for key in sorted(cat.A):
            if key not in self._stack_of:
                continue
            stack, pos = self._stack_of[key]
            entry = parts.setdefault(id(stack), (stack, [], [], [], []))
            entry[1].append(pos)
            entry[2].append(key[0])
            entry[3].append(cat.A[key])
            entry[4].append(cat.B[key])
        self._plans = {sid: _StackPlan(*entry) for sid, entry in parts.items()}
        self._plans_for = bundle_id

    def apply(self, customization: Customization | None) -> float:
        """W = W0 + B_cat·diag(g)·A_cat for every targeted matrix; return the milliseconds spent."""
        import torch

        if customization is None:
            self.clear()
            return 0.0
        t0 = time.perf_counter()
        bundle = customization.bundle
        cat = self._cat.get(bundle, self._linears, self._config_hash, model_name(self._model))
        self._plan(cat, bundle.bundle_id)
        g = torch.tensor(np.asarray(customization.g, np.float32))
        g_on: dict[Any, Any] = {}  # g uploaded once per device, not once per matrix

        def gates(device: Any) -> Any:
            if device not in g_on:
                g_on[device] = g.to(device)
            return g_on[device]

        if not all(stack.intact() for stack in self._stacks):
            raise BundleError(
                "The torch model's weights were moved or replaced after customization began; "
                "load the model again to customize it."
            )
        with torch.no_grad():
            for stack in self._stacks:
                self._merge_stack(stack, self._plans.get(id(stack)), gates)
            singles = {k for k in cat.A if k not in self._stack_of}
            for key in self._dirty - singles:
                self._linears[key].weight.copy_(self._pristine[key])
            for key in singles:
                w = self._linears[key].weight
                w0 = self._pristine.get(key)
                if w0 is None:
                    w0 = self._pristine[key] = w.detach().clone()
                ga = gates(w.device)[key[0]][:, None] * cat.A[key]
                if w.dtype == torch.float32:
                    torch.addmm(w0, cat.B[key], ga, out=w)  # one pass: read W0, write W
                else:  # bf16/fp16 weights: add in fp32, round once
                    w.copy_(torch.addmm(w0.float(), cat.B[key], ga).to(w.dtype))
            self._dirty = singles
        if any(
            d.type == "cuda" for d in g_on
        ):  # pragma: no cover - GPU only: make setup time real, not queued
            torch.cuda.synchronize()
        self.active = customization
        self.last_ms = (time.perf_counter() - t0) * 1e3
        return self.last_ms

    @staticmethod
    def _merge_stack(stack: _Stack, plan: _StackPlan | None, gates: Any) -> None:
        import torch

        if plan is None or len(plan.positions) < len(stack.w):
            stack.restore()  # layers this bundle leaves alone go back to W0
        if plan is None:
            return
        w0 = stack.pristine()
        g = gates(plan.A.device)
        for where, part in plan.chunks:
            ga = g[plan.layers[part]][:, :, None] * plan.A[part]  # [n, K·r, in]
            if stack.w.dtype == torch.float32 and isinstance(where, slice):
                torch.baddbmm(w0[where], plan.B[part], ga, out=stack.w[where])
            else:  # bf16/fp16 (add in fp32, round once) or scattered layers
                merged = torch.baddbmm(w0[where].float(), plan.B[part], ga).to(stack.w.dtype)
                if isinstance(where, slice):
                    stack.w[where] = merged
                else:
                    stack.w.index_copy_(0, where, merged)
        stack.dirty = True

    def clear(self) -> None:
        """Restore every customized matrix from its pristine copy."""
        import torch

        with torch.no_grad():
            for key in self._dirty:
                self._linears[key].weight.copy_(self._pristine[key])
            for stack in self._stacks:
                stack.restore()
        self._dirty = set()
        self.active = None

    def current_delta(self, layer: int, module: str) -> np.ndarray:
        """W − W0 as float64 (tensor-level readback for the parity tests)."""
        key = (layer, module)
        w = self._linears[key].weight.detach().to("cpu").double()
        if key in self._stack_of:
            stack, pos = self._stack_of[key]
            w0 = None if stack.w0 is None else stack.w0[pos]
        else:
            w0 = self._pristine.get(key)
        base = w if w0 is None else w0.detach().to("cpu").double()
        return (w - base).numpy()


class GateHooks:
    """Hook mode: per-sample gates g [B, L, K·r] applied unmerged, differentiable in g.

    Use as a context manager (hooks are removed on exit) or call ``remove()``. ``set_gates(None)``
    makes the hooks pass-through (plain base).
    """

    def __init__(self, model: Any, bundle: Bundle) -> None:
        self._linears = find_targets(model, bundle.targets)
        self._cat = _CatCache().get(bundle, self._linears, model_config_hash(model), model_name(model))
        self._g: Any = None
        self._handles: list[Any] = []
        self.n_layers = bundle.n_layers
        self.width = bundle.K * bundle.r
        for key in self._cat.A:
            self._handles.append(self._linears[key].register_forward_hook(self._make_hook(key)))

    def _make_hook(self, key: tuple[int, str]) -> Any:
        a_cat, b_cat = self._cat.A[key], self._cat.B[key]
        layer = key[0]

        def hook(_mod: Any, inputs: tuple[Any, ...], out: Any) -> Any:
            g = self._g
            if g is None:
                return out
            x = inputs[0]
            gl = g[:, layer].to(device=x.device, dtype=a_cat.dtype)  # [B, K·r]
            if x.shape[0] != gl.shape[0]:
                raise BundleError(f"The gates are for {gl.shape[0]} samples but the batch has {x.shape[0]}.")
            gl = gl.reshape(gl.shape[0], *([1] * (x.dim() - 2)), gl.shape[-1])
            h = (x.to(a_cat.dtype) @ a_cat.T) * gl
            return out + (h @ b_cat.T).to(out.dtype)

        return hook

    def set_gates(self, g: Any) -> None:
        """g: torch tensor [B, L, K·r] (may require grad), or None for the plain base."""
        if g is not None and (g.dim() != 3 or g.shape[1] != self.n_layers or g.shape[2] != self.width):
            raise BundleError(
                f"The gates have shape {tuple(g.shape)}, expected [B, {self.n_layers}, {self.width}]."
            )
        if g is not None and self._cat.A:
            a_any = next(iter(self._cat.A.values()))
            g = g.to(device=a_any.device, dtype=a_any.dtype)  # once here, not per module per token
        self._g = g

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
        self._g = None

    def __enter__(self) -> GateHooks:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()
