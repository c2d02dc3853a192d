"""A small, torch-free safetensors reader that tolerates bf16 and reports truncation in one sentence.

``safetensors.numpy`` cannot read bf16 (what GPU-trained peft experts are usually saved in) and its
errors on a cut-off file are not user-facing; the llama.cpp path must not import torch either.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from ..errors import BundleError

_DTYPES: dict[str, np.dtype] = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
}


def read_safetensors(path: Path, *, what: str = "tensor file") -> dict[str, np.ndarray]:
    """All tensors of ``path`` as float32 (floats) / native (ints) numpy arrays."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BundleError(f"The {what} {path} cannot be read: {exc.strerror or exc}.") from exc
    if len(raw) < 8:
        raise BundleError(f"The {what} {path} is truncated ({len(raw)} bytes).")
    (header_len,) = struct.unpack("<Q", raw[:8])
    if 8 + header_len > len(raw):
        raise BundleError(f"The {what} {path} is truncated (its header runs past the end of the file).")
    try:
        header = json.loads(raw[8 : 8 + header_len])
    except ValueError as exc:
        raise BundleError(f"The {what} {path} has a corrupt header.") from exc
    base = 8 + header_len
    out: dict[str, np.ndarray] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = _DTYPES.get(info.get("dtype", ""))
        if dtype is None:
            raise BundleError(
                f"The {what} {path} stores tensor {name} as unsupported type {info.get('dtype')}."
            )
        start, end = (int(x) for x in info["data_offsets"])
        shape = tuple(int(x) for x in info["shape"])
        count = int(np.prod(shape)) if shape else 1
        if base + end > len(raw) or end - start != count * dtype.itemsize:
            raise BundleError(f"The {what} {path} is truncated (tensor {name} is incomplete).")
        arr = np.frombuffer(raw, dtype=dtype, count=count, offset=base + start).reshape(shape)
        if info["dtype"] == "BF16":
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        elif arr.dtype.kind == "f":
            arr = arr.astype(np.float32)
        else:
            arr = arr.copy()
        out[name] = arr
    return out


def write_safetensors(
    path: Path, tensors: dict[str, np.ndarray], metadata: dict[str, str] | None = None
) -> None:
    from safetensors.numpy import save_file

    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(path), metadata=metadata)


def to_numpy(value: object) -> np.ndarray:
    """ndarray or torch tensor (any float dtype, any device) → float32 ndarray."""
    if isinstance(value, np.ndarray):
        return value.astype(np.float32, copy=False)
    detach = getattr(value, "detach", None)
    if detach is not None:
        return detach().to("cpu").float().numpy()
    return np.asarray(value, dtype=np.float32)
