"""The ``lora_a`` tensors of a loaded llama.cpp adapter, found in memory so a query can rewrite its gates there.

Why: reloading the adapter file per query (parse the GGUF, allocate, read ~14 MB for Qwen2.5-0.5B, validate
every tensor against the model) costs 5–12 ms, half of the per-query setup. A rank-wise gate only rescales
rows of A, so once an adapter is loaded the next query can write g ⊙ A_cat straight into the live tensors.

How: llama.cpp has no C API for an adapter's tensors, but exports two C++ members that reach them, called here
through ctypes with the Itanium ABI (``this`` first): ``llama_model::get_tensor(const char *)`` gives the base
weight, ``llama_adapter_lora::get_weight(ggml_tensor *)`` its (lora_a, lora_b) pair, whose first field is the
lora_a tensor; ggml's public C functions give its name, size and data pointer. Nothing is trusted unchecked:
every name and size must match the template, the build must keep tensors in host memory (no GPU offload),
and the live bytes must equal the file that was just loaded. Any mismatch returns None, and the caller keeps
reloading the file per query.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import modules as mods
from .gguf_adapter import AdapterTemplate, Placement

MODEL_GET_TENSOR = "_ZNK11llama_model10get_tensorEPKc"  # llama_model::get_tensor(char const*) const
ADAPTER_GET_WEIGHT = "_ZN18llama_adapter_lora10get_weightEP11ggml_tensor"  # llama_adapter_lora::get_weight
REGION_GAP = 64 << 20  # tensors further apart than this are taken to live in different buffers
MAX_REGION = 1 << 30  # one byte view never spans more than this


@dataclass(frozen=True)
class LiveTensors:
    """Byte views over the live ``lora_a`` tensors (one per cluster of nearby tensors: llama.cpp may place an
    adapter in several buffers) and where each tensor lies in them (same keys as the template)."""

    regions: list[np.ndarray]  # uint8, aliasing llama.cpp's adapter buffers: valid while the handle lives
    placement: Placement


@dataclass(frozen=True)
class _Lib:
    get_tensor: Any
    get_weight: Any
    name: Any
    nbytes: Any
    data: Any
    gpu_offload: Any


def _lib() -> _Lib | None:
    try:
        import llama_cpp
        from llama_cpp import _ggml
    except ImportError:
        return None
    lib, ggml = llama_cpp.llama_cpp._lib, _ggml.libggml
    try:
        get_tensor, get_weight = getattr(lib, MODEL_GET_TENSOR), getattr(lib, ADAPTER_GET_WEIGHT)
        name, nbytes, data = ggml.ggml_get_name, ggml.ggml_nbytes, ggml.ggml_get_data
    except AttributeError:  # another llama.cpp build: its symbols differ, stay on reloading
        return None
    get_tensor.argtypes, get_tensor.restype = [ctypes.c_void_p, ctypes.c_char_p], ctypes.c_void_p
    get_weight.argtypes, get_weight.restype = [ctypes.c_void_p, ctypes.c_void_p], ctypes.c_void_p
    name.argtypes, name.restype = [ctypes.c_void_p], ctypes.c_char_p
    nbytes.argtypes, nbytes.restype = [ctypes.c_void_p], ctypes.c_size_t
    data.argtypes, data.restype = [ctypes.c_void_p], ctypes.c_void_p
    return _Lib(get_tensor, get_weight, name, nbytes, data, llama_cpp.llama_supports_gpu_offload)


def _address(ptr: Any) -> int:
    return int(ctypes.cast(ptr, ctypes.c_void_p).value or 0)


def find_live_lora_a(
    model: Any, adapter: Any, template: AdapterTemplate, loaded: np.ndarray
) -> LiveTensors | None:
    """The live ``lora_a`` tensors of ``adapter`` (loaded from a file whose bytes are ``loaded``), or None.

    ``model`` / ``adapter``: the ``llama_model *`` and ``llama_adapter_lora *`` handles.
    """
    lib = _lib()
    if lib is None or lib.gpu_offload():  # a GPU build may keep adapter tensors in device memory
        return None
    model_p, adapter_p = _address(model), _address(adapter)
    if not model_p or not adapter_p:
        return None
    found: dict[tuple[int, str], int] = {}
    for key, slot in template.a_slots.items():
        base = mods.gguf_weight_name(*key)
        weight = lib.get_tensor(model_p, base.encode())
        if not weight or lib.name(weight) != base.encode():
            return None
        pair = lib.get_weight(adapter_p, weight)
        if not pair:
            return None
        a = ctypes.c_void_p.from_address(pair).value  # llama_adapter_lora_weight { ggml_tensor * a; * b; }
        if not a or lib.name(a) != f"{base}.lora_a".encode() or lib.nbytes(a) != slot.n_bytes:
            return None
        data = lib.data(a)
        if not data:
            return None
        found[key] = int(data)
    if not found:
        return None
    regions: list[np.ndarray] = []
    placement: Placement = {}
    order = sorted(found, key=found.__getitem__)
    start = 0
    for i in range(1, len(order) + 1):  # split where the next tensor starts far from the last one's end
        prev = order[i - 1]
        end = found[prev] + template.a_slots[prev].n_bytes
        if i < len(order) and found[order[i]] - end <= REGION_GAP:
            continue
        lo = found[order[start]]
        if end - lo > MAX_REGION or lo % 32:
            return None
        regions.append(np.ctypeslib.as_array((ctypes.c_uint8 * (end - lo)).from_address(lo)))
        placement.update({k: (len(regions) - 1, found[k] - lo) for k in order[start:i]})
        start = i
    for key, slot in template.a_slots.items():  # the live bytes are the file's: the pointers are right
        region, off = placement[key]
        live = regions[region][off : off + slot.n_bytes]
        if not np.array_equal(live, loaded[slot.offset : slot.offset + slot.n_bytes]):
            return None
    return LiveTensors(regions, placement)
