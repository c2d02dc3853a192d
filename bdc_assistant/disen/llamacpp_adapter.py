"""Per-query DisenLoRA on llama.cpp: patch A* into the bundle's adapter template and hot-swap it.

The base model stays loaded (and mmapped). The first query of a bundle (1) overwrites the ``lora_a`` bytes
of a private copy of the template with g ⊙ A_cat, (2) loads it with ``llama_adapter_lora_init``, (3) makes
it the context's only adapter, (4) frees the previous handle, (5) ``Llama.reset()`` — llama-cpp-python
would otherwise reuse the KV cache of a matching prompt prefix computed under the old adapter. It then
looks for the loaded adapter's own ``lora_a`` tensors (:mod:`.llamacpp_live`, checked byte for byte); when
found, every later query writes g ⊙ A_cat there and only resets the KV cache: no file, no load (the load
was 5–12 ms of a 25 ms setup on Qwen2.5-0.5B). Where they cannot be found, every query reloads.

The adapter API changed names across llama.cpp versions; :func:`detect_api` picks whatever the installed
llama-cpp-python offers (0.3.36: ``llama_set_adapters_lora``, which *replaces* the set; older:
``llama_set_adapter_lora`` + ``llama_clear_adapter_lora``; oldest: ``llama_lora_adapter_*``).

Where the installed llama.cpp carries our patch (:func:`fused_layout_available`), templates are written in the
``fused`` layout (gguf_adapter): one graph node per adapted matrix instead of four.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import BackendUnavailable, BundleError, ModelError
from .bundle import Bundle, template_path
from .compose import CatLora, Customization
from .gguf_adapter import (
    AdapterTemplate,
    Dtype,
    Layout,
    TemplatePatcher,
    padded_rank,
    q8_supported,
    read_template,
    write_template,
)
from .identity import shape_from_llama_metadata


@dataclass(frozen=True)
class AdapterApi:
    """The adapter functions of the installed binding, behind one shape."""

    flavour: str
    init: Callable[[Any, bytes], Any]
    free: Callable[[Any], None]
    activate: Callable[[Any, Any], None]  # (ctx, handle): make it the only active adapter
    deactivate: Callable[[Any], None]  # (ctx): no adapter


def detect_api(module: Any | None = None) -> AdapterApi:
    """Feature-detect the adapter API names of the installed llama-cpp-python."""
    lc: Any = module
    if lc is None:
        try:
            import llama_cpp as lc
        except ImportError as exc:
            raise BackendUnavailable("llama-cpp-python is not installed; run `make install`.") from exc
    if hasattr(lc, "llama_set_adapters_lora") and hasattr(lc, "llama_adapter_lora_init"):

        def activate(ctx: Any, handle: Any) -> None:
            arr = (lc.llama_adapter_lora_p_ctypes * 1)(handle)
            scales = (ctypes.c_float * 1)(1.0)
            if lc.llama_set_adapters_lora(ctx, arr, 1, scales) != 0:
                raise ModelError("llama.cpp refused to activate the customized adapter.")

        def deactivate(ctx: Any) -> None:
            lc.llama_set_adapters_lora(ctx, None, 0, None)

        return AdapterApi(
            "set_adapters_lora", lc.llama_adapter_lora_init, lc.llama_adapter_lora_free, activate, deactivate
        )
    if hasattr(lc, "llama_set_adapter_lora") and hasattr(lc, "llama_clear_adapter_lora"):

        def activate_old(ctx: Any, handle: Any) -> None:
            lc.llama_clear_adapter_lora(ctx)
            if lc.llama_set_adapter_lora(ctx, handle, 1.0) != 0:
                raise ModelError("llama.cpp refused to activate the customized adapter.")

        return AdapterApi(
            "set_adapter_lora",
            lc.llama_adapter_lora_init,
            lc.llama_adapter_lora_free,
            activate_old,
            lc.llama_clear_adapter_lora,
        )
    if hasattr(lc, "llama_lora_adapter_init") and hasattr(lc, "llama_lora_adapter_set"):

        def activate_oldest(ctx: Any, handle: Any) -> None:
            lc.llama_lora_adapter_clear(ctx)
            if lc.llama_lora_adapter_set(ctx, handle, 1.0) != 0:
                raise ModelError("llama.cpp refused to activate the customized adapter.")

        return AdapterApi(
            "lora_adapter_set",
            lc.llama_lora_adapter_init,
            lc.llama_lora_adapter_free,
            activate_oldest,
            lc.llama_lora_adapter_clear,
        )
    raise BackendUnavailable("The installed llama-cpp-python has no LoRA adapter API; upgrade it to ≥ 0.3.")


AUTO_F32_MAX_BYTES = 16 << 20
FUSED_ABI = "bdc_fused_lora_abi"  # exported by a llama.cpp built with scripts/llama_patches


def fused_layout_available() -> bool:
    """Whether the installed llama.cpp runs ``fused`` adapters (our patch, CPU build: its kernel is CPU-only)."""
    try:
        import llama_cpp

        abi = getattr(llama_cpp.llama_cpp._lib, FUSED_ABI)
    except (ImportError, AttributeError, OSError):
        return False
    abi.argtypes, abi.restype = [], ctypes.c_int
    return int(abi()) >= 1 and not llama_cpp.llama_supports_gpu_offload()


def _scratch_dir() -> Path:
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())


class LlamaCppAdapterSlot:
    """Holds at most one live customized adapter on one ``llama_cpp.Llama``; swap per query.

    ``apply(customization)`` returns the milliseconds spent (patch + load + activate + free). Call
    ``close()`` before the Llama is closed: handles belong to the model.
    """

    def __init__(
        self,
        llama: Any,
        *,
        dtype: Dtype | Literal["auto"] = "auto",
        api: AdapterApi | None = None,
        in_place: bool = True,
        layout: Layout | Literal["auto"] = "auto",
    ) -> None:
        self._llama = llama
        self._api = api or detect_api()
        self._in_place = in_place and api is None  # only through the real binding (see llamacpp_live)
        self._dtype_choice = dtype
        self._dtype: Dtype = "f16"
        if layout == "auto":
            layout = "fused" if api is None and fused_layout_available() else "standard"
        elif layout == "fused" and api is None and not fused_layout_available():
            raise BackendUnavailable(
                "The installed llama.cpp cannot run fused adapters (it lacks bdc-assistant's patch): "
                "reinstall it with `make install`."
            )
        self.layout: Layout = layout
        meta = self._meta = dict(getattr(llama, "metadata", {}) or {})
        self.arch = str(meta.get("general.architecture", ""))
        self.n_layers = int(meta.get(f"{self.arch}.block_count", 0) or 0)
        self.n_heads = int(meta.get(f"{self.arch}.attention.head_count", 0) or 0)
        self.n_kv_heads = int(meta.get(f"{self.arch}.attention.head_count_kv", 0) or self.n_heads)
        self._handle: Any = None
        self._active = False  # whether the context computes with self._handle
        self._live: TemplatePatcher | None = None  # writes into the loaded adapter's own lora_a tensors
        self.in_place_patches = 0
        self._current: tuple[str, bytes] | None = None  # what the live handle computes, for holds()
        self._templates: dict[str, AdapterTemplate] = {}
        self._scratch: dict[str, Path] = {}
        self._patchers: dict[str, TemplatePatcher] = {}
        self._lock = threading.Lock()
        self.loads = 0
        self.frees = 0
        self.last_ms: dict[str, float] = {}
        self._finalizer = weakref.finalize(self, _unlink_all, self._scratch)

    # -- template management ------------------------------------------------------------------

    def template_for(self, bundle: Bundle) -> AdapterTemplate:
        """The bundle's template for this model (cached in the bundle dir or the cache dir; built once)."""
        key = bundle.bundle_id
        if key in self._templates:
            return self._templates[key]
        loaded = f"'{self.model_name}' ({self.n_layers}-layer {self.arch})"
        if self.arch != bundle.base.arch or (self.n_layers and self.n_layers != bundle.n_layers):
            raise BundleError(
                f"The solver bundle {bundle.path} was made for base '{bundle.base.name}' "
                f"({bundle.n_layers}-layer {bundle.base.arch}); it cannot customize {loaded}."
            )
        shape = shape_from_llama_metadata(self._meta, self._n_vocab())
        if shape is not None and shape.config_hash() != bundle.base.hf_config_hash:
            raise BundleError(
                f"The solver bundle {bundle.path} was made for base '{bundle.base.name}' "
                f"(architecture config differs); it cannot customize {loaded}."
            )
        self._dtype = self._resolve_dtype(bundle)
        path = template_path(bundle, self.arch)
        if self._dtype != "f16":
            path = path.with_name(path.stem + f".{self._dtype}.gguf")
        if self.layout == "fused":
            path = path.with_name(path.stem + ".fused.gguf")
        template: AdapterTemplate | None = None
        if path.exists():
            try:
                template = read_template(path, expect_bundle_id=bundle.bundle_id)
                rows = {slot.shape[0] for slot in template.a_slots.values()}
                if (
                    template.dtype != self._dtype
                    or template.layout != self.layout
                    or template.b_dtype != self._dtype  # q8_0 templates from before lora_b was Q8_0
                    or len(template.a_slots) != bundle.n_layers * len(bundle.targets)
                    or template.rank != bundle.K * bundle.r  # 0: written before the rank was padded
                    or rows != {padded_rank(bundle.K * bundle.r, self._dtype, self.layout)}
                ):
                    template = None
            except (BundleError, KeyError, ValueError, IndexError):
                template = None
        if template is None:
            template = write_template(
                bundle.cat,
                path,
                arch=self.arch,
                n_heads=self.n_heads,
                n_kv_heads=self.n_kv_heads,
                bundle_id=bundle.bundle_id,
                dtype=self._dtype,
                layout=self.layout,
            )
        self._templates[key] = template
        return template

    def _resolve_dtype(self, bundle: Bundle) -> Dtype:
        """ "auto": f32 for small adapters, f16 above AUTO_F32_MAX_BYTES (counted as f32).

        On a small base the adapter's cost per token is dominated by the extra graph nodes, not by bytes;
        f32 skips the activation → f16 conversion in every LoRA matmul (measured on gemma-3-270m, 1 thread,
        11 MiB adapter: decode 0.90 of plain with f32 vs 0.88 with f16) and matches torch more closely (1e-6
        vs 4e-4). From Qwen2.5-0.5B up the bytes win: its K=3, r=4 adapter (26 MiB as f32) decodes at 0.86 of
        plain as f16 vs 0.83 as f32, loads in 8.5 vs 10.2 ms and answers 5 % sooner (2-core AMD EPYC,
        ``bench/customize.py --adapter-dtype``, bench/results/customize_qwen05b_dtype_amd.json). There,
        q8_0 (both factors in Q8_0, rank padded to 32) goes further: the patch rewrites only the block
        scales (no float16 cast of 3 M entries, so no torch on the answer path), the file is smaller to
        load, and a decode step's B·(A x) is one int8 block dot per row instead of a scalar f16 loop
        (gguf_adapter.RANK_ALIGN), at ~1 % of the adapter's effect on the logits (tests/disen/test_parity.py).
        """
        if self._dtype_choice != "auto":
            return self._dtype_choice
        cat = bundle.cat
        n_bytes = 4 * sum(cat.A[k].size + cat.B[k].size for k in cat.layer_modules())
        if n_bytes <= AUTO_F32_MAX_BYTES:
            return "f32"
        return "q8_0" if q8_supported(cat, self.layout) else "f16"

    # -- swapping -----------------------------------------------------------------------------------

    def apply(self, customization: Customization | None) -> float:
        """Make ``customization`` the active adapter (None = plain base); return the milliseconds spent."""
        if customization is None:
            self.clear()
            return 0.0
        t0 = time.perf_counter()
        template = self.template_for(customization.bundle)
        t1 = time.perf_counter()
        ms = self.apply_template(template, customization.bundle.cat, customization.g)
        self._current = _identity(customization)
        self.last_ms["template"] = (t1 - t0) * 1e3
        return ms + self.last_ms["template"]

    def holds(self, customization: Customization) -> bool:
        """Whether the live adapter is exactly ``customization`` (same bundle, same gates, bit for bit)."""
        return bool(self._handle) and self._current == _identity(customization)

    def apply_template(self, template: AdapterTemplate, cat: CatLora, g: np.ndarray) -> float:
        """Lower level: patch g ⊙ cat.A into a private copy of ``template`` and swap it in.

        Once an adapter of ``template`` is loaded and its tensors were found in memory, later queries write
        g ⊙ cat.A into those tensors instead (no file, no load): ``last_ms['init']`` is then 0.
        """
        with self._lock:
            self._current = None
            if not self._model_alive():
                # the model (and with it the adapter whose memory a live patch writes) is gone
                self._live, self._handle = None, None
                raise ModelError("The llama.cpp model was closed; load it again before customizing it.")
            t0 = time.perf_counter()
            live = self._live
            if live is not None and live.template is template and live.cat is cat:
                live.patch(g)
                t1 = time.perf_counter()
                if not self._active:
                    self._api.activate(self._ctx_ptr(), self._handle)
                    self._active = True
                self._llama.reset()
                t2 = time.perf_counter()
                self.in_place_patches += 1
                self.last_ms.update(patch=(t1 - t0) * 1e3, init=0.0, swap=(t2 - t1) * 1e3)
                return (t2 - t0) * 1e3
            key = template.bundle_id + str(template.path)
            scratch = self._scratch.get(key)
            patcher = self._patchers.get(key)
            if scratch is None or not scratch.exists():
                fd, name = tempfile.mkstemp(
                    prefix=f"bdc-adapter-{os.getpid()}-", suffix=".gguf", dir=_scratch_dir()
                )
                os.close(fd)
                scratch = template.private_copy(Path(name))
                self._scratch[key] = scratch
                patcher = None
            if patcher is None or patcher.cat is not cat or patcher.target != scratch:
                if patcher is not None:
                    patcher.close()
                patcher = self._patchers[key] = template.open_patcher(scratch, cat)
            patcher.patch(g)
            t1 = time.perf_counter()
            handle = self._api.init(self._model_ptr(), str(scratch).encode())
            if not handle:
                raise ModelError(
                    f"llama.cpp could not load the customized adapter built from {template.path} "
                    "(does the bundle match the loaded base model?)."
                )
            self.loads += 1
            t2 = time.perf_counter()
            try:
                self._api.activate(self._ctx_ptr(), handle)
            except BaseException:
                self._api.free(handle)
                self.frees += 1
                raise
            self._drop_live()
            old, self._handle = self._handle, handle
            self._active = True
            if old:
                self._api.free(old)
                self.frees += 1
            self._llama.reset()
            t3 = time.perf_counter()
            self.last_ms.update(patch=(t1 - t0) * 1e3, init=(t2 - t1) * 1e3, swap=(t3 - t2) * 1e3)
            if self._in_place:
                self._attach_live(template, cat, scratch)
            return (t3 - t0) * 1e3

    def _attach_live(self, template: AdapterTemplate, cat: CatLora, scratch: Path) -> None:
        """Find the loaded adapter's lora_a tensors for the next queries (checked; None → keep reloading)."""
        from .llamacpp_live import find_live_lora_a

        try:
            loaded = np.memmap(scratch, dtype=np.uint8, mode="r")
            found = find_live_lora_a(self._model_ptr(), self._handle, template, loaded)
            if found is not None:
                self._live = TemplatePatcher(template, scratch, cat, live=(found.regions, found.placement))
        except (OSError, ValueError, AttributeError, BundleError):
            self._drop_live()

    def _drop_live(self) -> None:
        if self._live is not None:
            self._live.close()
        self._live = None

    def clear(self) -> None:
        """Back to the plain base: deactivate, drop cached prompt state, and free the handle — unless its
        tensors are patched in place, then it stays loaded (inactive) for the next customized query."""
        self._to_plain(keep_live=True)

    def _to_plain(self, *, keep_live: bool) -> None:
        """Deactivate and reset; free the handle unless ``keep_live`` and its tensors are patched in place."""
        with self._lock:
            self._current = None
            if self._handle:
                self._api.deactivate(self._ctx_ptr())
                self._active = False
                if not (keep_live and self._live is not None):
                    self._drop_live()
                    self._api.free(self._handle)
                    self.frees += 1
                    self._handle = None
            self._llama.reset()

    @property
    def live_handles(self) -> int:
        """Adapters this slot has loaded and not freed (0 or 1 when nothing leaks; 1 after ``clear`` when
        the adapter is patched in place and kept for the next query)."""
        return self.loads - self.frees

    @property
    def active(self) -> bool:
        """Whether the context computes with an adapter (a handle kept loaded after ``clear`` is not)."""
        return bool(self._handle) and self._active

    def close(self) -> None:
        """Free the adapter (if the model is still alive) and delete scratch files."""
        try:
            if self._handle and self._model_alive():
                self._to_plain(keep_live=False)
        finally:
            self._drop_live()
            self._handle = None
            for patcher in self._patchers.values():
                patcher.close()
            self._patchers.clear()
            _unlink_all(self._scratch)

    @property
    def model_name(self) -> str:
        """The loaded GGUF's file name (for messages that name both bases)."""
        path = getattr(self._llama, "model_path", None)
        return Path(path).name if path else str(self._meta.get("general.name", self.arch))

    def _n_vocab(self) -> int:
        n_vocab = getattr(self._llama, "n_vocab", None)
        return int(n_vocab()) if callable(n_vocab) else 0

    def _model_alive(self) -> bool:
        """Whether the Llama still holds its model (``Llama.close()`` frees it, and every adapter with it)."""
        return bool(getattr(getattr(self._llama, "_model", None), "model", None))

    def _model_ptr(self) -> Any:
        return self._llama._model.model

    def _ctx_ptr(self) -> Any:
        return self._llama._ctx.ctx


def _identity(customization: Customization) -> tuple[str, bytes]:
    return customization.bundle.bundle_id, np.ascontiguousarray(customization.g, np.float32).tobytes()


def _unlink_all(paths: dict[str, Path]) -> None:
    for p in list(paths.values()):
        with contextlib.suppress(OSError):
            p.unlink()
    paths.clear()
