"""The llama.cpp side of the math: an adapter-GGUF template per bundle and the per-query A* patch.

llama.cpp applies a LoRA unmerged, y = W x + scale·B (A x), with one float scale per adapter — it cannot
express per-layer, per-rank gates. So the exact route (research/lora.md §3.7) is: write once a rank-K·r
adapter whose ``lora_b`` is B_cat and whose ``lora_a`` is a placeholder, and per query overwrite only the
``lora_a`` bytes with A* = g[ℓ] ⊙_rows A_cat (scales already folded into A_cat). The rank is stored padded
with zeros to a multiple of :data:`RANK_ALIGN` (llama.cpp's fast matmul path needs it).

Storage (``Dtype``): f32 or f16 for both factors, or ``q8_0``: both in llama.cpp's Q8_0 blocks (32 int8
values and one f16 scale d each, one block never spanning two rows; the rank padded to 32 so that a
``lora_b`` row is one block). A rank-wise
gate scales a whole row of A, so on Q8_0 the per-query patch rewrites only the block scales, d = g·d₀: a
thirty-fourth of the bytes, nothing to requantize, and no float16 cast of millions of entries (which
numpy does in scalar code and which needed torch to be fast).

Layout (``Layout``): ``standard`` is the LoRA every llama.cpp reads. ``fused`` stores ``lora_b`` transposed (ggml
shape [out, r]) with the rank unpadded, and says so in ``bdc.lora_layout``: a llama.cpp built with our patch
(scripts/llama_patches) then runs A x, B·h, the scale and the add of each adapted matrix as one graph node
with axpy passes over B's rows; a stock llama.cpp refuses the file (the shape check fails), it never computes
with the transposed factor. ``lora_a`` is the same in both layouts, so the per-query patch is too.

The header omits ``adapter.lora.alpha`` (llama.cpp reads 0 → scale = the context scale, 1.0), so the
per-tensor rank never rescales anything. For Llama GGUFs, ``lora_b`` of attn_q / attn_k get the same
row permutation the HF→GGUF converter applies to the q/k weights. Gemma-3 and Qwen2 need none:
convert_hf_to_gguf's ``Qwen2Model.modify_tensors`` passes q/k through unchanged (NEOX rope). Qwen2's
q/k/v biases are base tensors, untouched by a LoRA (peft's default ``bias="none"``), so the adapter
carries none.
"""

from __future__ import annotations

import shutil
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .. import atomic
from ..errors import BundleError
from . import modules as mods
from .compose import CatLora

Dtype = Literal["f16", "f32", "q8_0"]
Layout = Literal["standard", "fused"]
Q8_BLOCK = 32  # values per Q8_0 block
Q8_BLOCK_BYTES = 34  # f16 scale + 32 int8
# The adapter's rank is padded with zero rows of A and zero columns of B up to a multiple of this. Why:
# llama.cpp's tinyBLAS (llamafile sgemm) takes a matmul only when its inner size is a multiple of its vector
# width (8 on AVX2, 16 on AVX-512, 4 on NEON); B·(A x) has the rank as inner size, and K·r = 12 sent every
# prompt token's B product down ggml's one-dot-at-a-time path. Padded to 16, the LoRA's share of a 107-token
# prompt evaluation on Qwen2.5-0.5B fell from +30-39 % to +15 % (2-core AMD EPYC). Zeros change nothing.
# A decode step (one token) never takes tinyBLAS (llamafile_sgemm refuses n < 2): B·(A x) is one ggml
# vec_dot per output row, of length rank. In f16/f32 a 16-long dot is shorter than one SIMD step (32) and
# runs scalar — 158 µs per gate/up lora_b of Qwen2.5-0.5B (1 thread). q8_0 pads to 32 instead and stores
# lora_b as Q8_0 too: each row is then one block, one AVX2 int8 dot (50 µs per gate/up lora_b), and the
# adapter's products fall from 9.7 to 5.0 ms per token (bench/results/lora_profile_qwen05b_amd.json).
RANK_ALIGN = 16
RANK_ALIGN_Q8 = Q8_BLOCK
BUNDLE_ID_KEY = "bdc.bundle_id"
PERMUTED_KEY = "bdc.qk_permuted"
RANK_KEY = "bdc.rank"  # K·r before padding: the rows of lora_a a query writes
LAYOUT_KEY = "bdc.lora_layout"  # "fused": lora_b transposed, for the patched llama.cpp (absent: standard)


def padded_rank(rank: int, dtype: Dtype = "f16", layout: Layout = "standard") -> int:
    """The rank an adapter template of ``dtype`` is written with (see :data:`RANK_ALIGN`; fused: unpadded,
    its kernel loops over the rank itself, so zero rows would only cost time)."""
    if layout == "fused":
        return rank
    align = RANK_ALIGN_Q8 if dtype == "q8_0" else RANK_ALIGN
    return -(-rank // align) * align


def llama_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """convert_hf_to_gguf's ``LlamaModel.permute`` on output rows: HF half-rotation → interleaved pairs."""
    rows = w.shape[0]
    return w.reshape(n_head, 2, rows // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def llama_unpermute(w: np.ndarray, n_head: int) -> np.ndarray:
    rows = w.shape[0]
    return w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


Placement = dict[tuple[int, str], tuple[int, int]]  # (layer, module) -> (region, byte offset in it)


@dataclass(frozen=True)
class TensorSlot:
    offset: int  # absolute byte offset of the tensor data in the file
    n_bytes: int
    shape: tuple[int, int]  # numpy shape [padded_rank(K·r), in]; the rows past K·r stay zero


@dataclass(frozen=True)
class AdapterTemplate:
    """A written template file plus where each ``lora_a`` lives in it."""

    path: Path
    arch: str
    dtype: Dtype
    a_slots: dict[tuple[int, str], TensorSlot]
    bundle_id: str
    rank: int = 0  # K·r (the slots hold padded_rank(rank) rows); 0 when the file does not say
    # storage of lora_b: the same as lora_a's, except in q8_0 templates written before lora_b was Q8_0
    b_dtype: Dtype = "f16"
    layout: Layout = "standard"

    @property
    def np_dtype(self) -> type[np.floating]:
        return np.float16 if self.dtype in ("f16", "q8_0") else np.float32

    def a_bytes(self, rows: int, cols: int) -> int:
        """Bytes of one ``lora_a`` of ``rows`` × ``cols`` in this template's storage."""
        if self.dtype == "q8_0":
            return rows * (cols // Q8_BLOCK) * Q8_BLOCK_BYTES
        return rows * cols * np.dtype(self.np_dtype).itemsize

    def patch(self, target: Path, cat: CatLora, g: np.ndarray) -> None:
        """Write A* = g ⊙ A_cat for every (layer, module) into ``target`` (a private copy of the template)."""
        patcher = self.open_patcher(target, cat)
        try:
            patcher.patch(g)
        finally:
            patcher.close()

    def open_patcher(self, target: Path, cat: CatLora) -> TemplatePatcher:
        """A patcher that keeps ``target`` mapped, for many queries (see :class:`TemplatePatcher`)."""
        return TemplatePatcher(self, Path(target), cat)

    def private_copy(self, target: Path) -> Path:
        shutil.copyfile(self.path, target)
        return target


class TemplatePatcher:
    """Writes A* = g ⊙ A_cat straight into a mapped private copy of a template, query after query.

    Why: the per-query patch is on the critical path of every answer. Keeping one shared mapping open
    (instead of mapping the file per query) avoids re-faulting every page, and ``np.multiply(..., out=)``
    into views of the mapping writes each A* once with no temporaries (f16: the cast happens in the same
    pass). No msync: llama.cpp reads the file through the same page cache, which a MAP_SHARED write
    updates at once; the file is scratch, its durability does not matter.
    """

    def __init__(
        self,
        template: AdapterTemplate,
        target: Path,
        cat: CatLora,
        live: tuple[list[np.ndarray], Placement] | None = None,
    ) -> None:
        """``live``: byte regions of an adapter llama.cpp has loaded and where each lora_a lies in them
        (:mod:`.llamacpp_live`): write there instead of into the file at ``target``."""
        self.template = template
        self.target = target
        self.cat = cat
        place: Placement
        if live is None:
            self._regions: list[np.ndarray] = [np.memmap(target, dtype=np.uint8, mode="r+")]
            place = {k: (0, slot.offset) for k, slot in template.a_slots.items()}
        else:
            self._regions, place = list(live[0]), live[1]
        self._views: dict[tuple[int, str], np.ndarray] = {}
        # Q8_0: every block scale of every lora_a, as one gather/scatter per region: the region as 2-byte
        # words, where each scale lives in it, its value for A_cat itself (g = 1) and which gate multiplies
        # it. One vector op per query instead of one per tensor (168 small strided ufunc calls cost 3 ms on
        # Qwen2.5-0.5B).
        self._q8: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        q8_parts: dict[int, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
        source = np.memmap(template.path, dtype=np.uint8, mode="r") if template.dtype == "q8_0" else None
        for key, slot in template.a_slots.items():
            a_cat = cat.A[key]
            rows, cols = slot.shape
            expected = (padded_rank(a_cat.shape[0], template.dtype, template.layout), a_cat.shape[1])
            if (
                template.a_bytes(rows, cols) != slot.n_bytes
                or (rows, cols) != expected
                or template.rank != a_cat.shape[0]
            ):
                self.close()
                raise BundleError(
                    f"The adapter template {template.path} does not match its bundle (tensor size)."
                )
            region, offset = place[key]
            if source is not None:
                if offset % 2:
                    self.close()
                    raise BundleError(f"The adapter template {template.path} has a misaligned lora_a.")
                rank, n_blocks = a_cat.shape[0], cols // Q8_BLOCK
                d0 = q8_scales(source[slot.offset : slot.offset + slot.n_bytes], rows, cols)[:rank]
                where = offset // 2 + (np.arange(rank * n_blocks) * (Q8_BLOCK_BYTES // 2))
                gate = key[0] * rank + np.repeat(np.arange(rank), n_blocks)
                q8_parts.setdefault(region, []).append((where, d0.astype(np.float32).ravel(), gate))
                continue
            raw = self._regions[region][offset : offset + slot.n_bytes]
            self._views[key] = raw.view(template.np_dtype).reshape(slot.shape)[: a_cat.shape[0]]
        del source
        for region, parts in q8_parts.items():
            mem = self._regions[region]
            where, d0, gate = (np.concatenate([part[i] for part in parts]) for i in range(3))
            self._q8.append((mem[: mem.size // 2 * 2].view(np.uint16), where, d0, gate))
        self._torch_views = _torch_views(self._views, cat) if template.dtype == "f16" else None

    def patch(self, g: np.ndarray) -> None:
        if not self._regions:
            raise BundleError(f"The adapter patcher for {self.target} is closed.")
        g = np.asarray(g, np.float32)
        if self._torch_views is not None:
            import torch

            g_t = torch.from_numpy(g.copy())
            for (layer, _), (a_t, dst_t) in self._torch_views.items():
                torch.mul(a_t, g_t[layer].unsqueeze(1), out=dst_t)
            return
        if self._q8:
            flat = g.ravel()
            for words, where, d0, gate in self._q8:
                words[where] = (flat[gate] * d0).astype(np.float16).view(np.uint16)
            return
        for key, dst in self._views.items():
            np.multiply(g[key[0]][:, None], self.cat.A[key], out=dst, casting="same_kind")

    def close(self) -> None:
        """Drop the mapping (the views go first: the last reference unmaps the file)."""
        self._torch_views = None
        self._views.clear()
        self._q8 = []
        self._regions = []


def q8_scales(raw: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """The f16 block scales d of a Q8_0 tensor's bytes, as a [rows, cols / 32] view that writes through."""
    blocks = raw.reshape(rows, cols // Q8_BLOCK, Q8_BLOCK_BYTES)
    return blocks[:, :, :2].view(np.float16)[:, :, 0]


def q8_supported(cat: CatLora, layout: Layout = "standard") -> bool:
    """Q8_0 needs every ``lora_a`` row to split into whole blocks (fused: every transposed ``lora_b`` row too)."""
    return all(
        cat.A[k].shape[1] % Q8_BLOCK == 0 and (layout != "fused" or cat.B[k].shape[0] % Q8_BLOCK == 0)
        for k in cat.layer_modules()
    )


def _torch_views(
    views: dict[tuple[int, str], np.ndarray], cat: CatLora
) -> dict[tuple[int, str], tuple[Any, Any]] | None:
    """torch aliases of A_cat and of the f16 slots, or None when torch is not loaded in this process.

    Why: numpy's float32 → float16 cast is scalar code, 10.7 ms for the 3 M entries of a K=3, r=4 Qwen2.5-0.5B
    adapter; torch's is vectorised (1.2 ms, bit-identical: both round to nearest even). The aliases share
    memory, so nothing is copied. Only when torch is already loaded (the torch backend, the trainer): the
    llama.cpp answer path stays torch-free, and large adapters are q8_0 there, which need no cast.
    """
    if "torch" not in sys.modules:
        return None
    import torch

    with warnings.catch_warnings():
        # A_cat is read-only (bundles are immutable); torch warns about aliasing such arrays, but only reads.
        warnings.simplefilter("ignore", UserWarning)
        return {
            key: (torch.from_numpy(np.ascontiguousarray(cat.A[key], np.float32)), torch.from_numpy(dst))
            for key, dst in views.items()
        }


def write_template(
    cat: CatLora,
    path: Path,
    *,
    arch: str,
    n_heads: int,
    n_kv_heads: int,
    bundle_id: str,
    dtype: Dtype = "f16",
    permute_qk: bool | None = None,
    g: np.ndarray | None = None,
    layout: Layout = "standard",
) -> AdapterTemplate:
    """Write the adapter GGUF (``lora_a`` = g ⊙ A_cat, default g = 1; ``lora_b`` = B_cat) and index it.

    ``layout="fused"`` writes ``lora_b`` transposed for the patched llama.cpp (module docstring).

    ``permute_qk``: None = what the architecture needs (Llama only); True/False force it, which exists
    only for the negative controls of the parity tests (Llama without, Qwen2/Gemma-3 with).
    """
    import gguf

    if arch not in mods.SUPPORTED_ARCHS:
        raise BundleError(f"Architecture '{arch}' is not supported by the DisenLoRA adapter writer.")
    if dtype == "q8_0" and not q8_supported(cat, layout):
        raise BundleError(
            f"The adapter cannot be stored as q8_0: a factor's row is not a multiple of {Q8_BLOCK}."
        )
    np_dtype = np.float32 if dtype == "f32" else np.float16
    permute = arch in mods.QK_PERMUTED_ARCHS if permute_qk is None else bool(permute_qk)
    path = Path(path)
    with atomic.file(path) as tmp:
        writer = gguf.GGUFWriter(str(tmp), arch)
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_string(BUNDLE_ID_KEY, bundle_id)
        writer.add_bool(PERMUTED_KEY, permute)
        if layout == "fused":
            writer.add_string(LAYOUT_KEY, "fused")
        rank = cat.n_experts * cat.rank
        rows = padded_rank(rank, dtype, layout)
        writer.add_uint32(RANK_KEY, rank)
        ones = np.ones((cat.n_layers, rank), np.float32)
        gates = ones if g is None else np.asarray(g, np.float32)
        for layer, module in cat.layer_modules():
            b = cat.B[(layer, module)]
            if permute and module in ("q_proj", "k_proj"):
                b = llama_permute(b, n_heads if module == "q_proj" else n_kv_heads)
            name = mods.gguf_weight_name(layer, module)
            b_out = np.zeros((b.shape[0], rows), np.float32 if dtype == "q8_0" else np_dtype)
            b_out[:, :rank] = b
            if layout == "fused":  # rows of B's columns: ggml shape [out, r]
                b_out = np.ascontiguousarray(b_out.T)
            a_cat = cat.A[(layer, module)]
            if dtype == "q8_0":
                # quantize A_cat itself, then scale each row's block scales by its gate: exactly the bytes
                # the per-query patch writes (TemplatePatcher)
                a_pad = np.zeros((rows, a_cat.shape[1]), np.float32)
                a_pad[:rank] = a_cat
                q = np.ascontiguousarray(gguf.quants.quantize(a_pad, gguf.GGMLQuantizationType.Q8_0))
                d = q8_scales(q.reshape(-1), rows, a_cat.shape[1])[:rank]
                np.multiply(gates[layer][:, None], d.astype(np.float32), out=d, casting="same_kind")
                writer.add_tensor(name + ".lora_a", q, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
                q_b = gguf.quants.quantize(b_out, gguf.GGMLQuantizationType.Q8_0)
                writer.add_tensor(name + ".lora_b", q_b, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
            else:
                a_out = np.zeros((rows, a_cat.shape[1]), np_dtype)
                a_out[:rank] = gates[layer][:, None] * a_cat
                writer.add_tensor(name + ".lora_a", a_out)
                writer.add_tensor(name + ".lora_b", b_out)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    return read_template(path, expect_bundle_id=bundle_id)


def _layout_of(reader: Any, path: Path) -> Layout:
    """The layout an adapter file says it has (no key: standard); one this version does not know is refused."""
    field = reader.fields.get(LAYOUT_KEY)
    if field is None:
        return "standard"
    if bytes(field.parts[field.data[0]]).decode() != "fused":
        raise BundleError(f"The adapter template {path} has a layout this version cannot read.")
    return "fused"


def read_template(path: Path, *, expect_bundle_id: str | None = None) -> AdapterTemplate:
    """Index an existing template (offsets of every ``lora_a``); refuse one made for another bundle."""
    import gguf

    try:
        reader = gguf.GGUFReader(str(path), "r")
    except (OSError, ValueError) as exc:
        raise BundleError(f"The adapter template {path} is unreadable: {exc}.") from exc
    field = reader.fields.get(BUNDLE_ID_KEY)
    bundle_id = bytes(field.parts[field.data[0]]).decode() if field is not None else ""
    if expect_bundle_id is not None and bundle_id != expect_bundle_id:
        raise BundleError(f"The adapter template {path} belongs to another bundle.")
    rank_field = reader.fields.get(RANK_KEY)
    rank = int(rank_field.parts[rank_field.data[0]][0]) if rank_field is not None else 0
    arch_field = reader.fields["general.architecture"]
    arch = bytes(arch_field.parts[arch_field.data[0]]).decode()
    slots: dict[tuple[int, str], TensorSlot] = {}
    dtype: Dtype = "f16"
    stem_to_module = {mods.gguf_stem(m): m for m in mods.TARGET_MODULES}
    by_type: dict[Any, Dtype] = {
        gguf.GGMLQuantizationType.F16: "f16",
        gguf.GGMLQuantizationType.Q8_0: "q8_0",
    }
    layout = _layout_of(reader, path)
    b_types = set()
    for t in reader.tensors:
        if t.name.endswith(".lora_b"):
            b_types.add(by_type.get(t.tensor_type, "f32"))
        if not t.name.endswith(".lora_a"):
            continue
        parts = t.name.split(".")  # blk.{l}.{stem}.weight.lora_a
        layer, module = int(parts[1]), stem_to_module[parts[2]]
        dtype = by_type.get(t.tensor_type, "f32")
        slots[(layer, module)] = TensorSlot(
            int(t.data_offset), int(t.n_bytes), (int(t.shape[1]), int(t.shape[0]))
        )
    del reader
    return AdapterTemplate(
        path=Path(path),
        arch=arch,
        dtype=dtype,
        a_slots=slots,
        bundle_id=bundle_id,
        rank=rank,
        b_dtype=b_types.pop() if len(b_types) == 1 else dtype,
        layout=layout,
    )


def read_adapter_delta(
    path: Path,
    layer: int,
    module: str,
    *,
    n_heads: int = 0,
    n_kv_heads: int = 0,
) -> np.ndarray:
    """ΔW = B·A as llama.cpp will apply it, read back from an adapter file (q/k rows un-permuted for Llama)."""
    import gguf

    reader = gguf.GGUFReader(str(path), "r")
    name = mods.gguf_weight_name(layer, module)
    tensors = {t.name: t for t in reader.tensors}
    a_t, b_t = tensors[name + ".lora_a"], tensors[name + ".lora_b"]
    a = np.asarray(gguf.quants.dequantize(a_t.data, a_t.tensor_type), np.float64)
    b = np.asarray(gguf.quants.dequantize(b_t.data, b_t.tensor_type), np.float64)
    if _layout_of(reader, path) == "fused":
        b = b.T  # stored as rows of B's columns
    permuted = reader.fields.get(PERMUTED_KEY)
    if permuted is not None and bool(permuted.parts[permuted.data[0]][0]) and module in ("q_proj", "k_proj"):
        b = llama_unpermute(b, n_heads if module == "q_proj" else n_kv_heads)
    alpha = reader.fields.get("adapter.lora.alpha")
    scale = 1.0
    if alpha is not None and float(alpha.parts[alpha.data[0]][0]) != 0.0:
        scale = float(alpha.parts[alpha.data[0]][0]) / a.shape[0]
    return scale * (b @ a)
