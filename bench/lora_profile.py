"""Where a customized decode step spends its time in llama.cpp, node by node (plain base vs each adapter dtype).

The context gets a scheduler eval callback that asks to see every graph node, so ggml computes the graph one
node at a time and the time between two callbacks is one node's compute (plus a constant ~2 µs of
callback, the same for every node: compare rows, not absolute sums). Nodes are grouped by operation and,
for matrix products, by what they multiply: the base projections, ``lora_a`` (A x) or ``lora_b``
(B·(A x)). This is how we found that a decode step's ``lora_b`` products never take llama.cpp's tinyBLAS
path (it refuses n < 2) and run one short dot per output row (gguf_adapter.RANK_ALIGN).

    python bench/lora_profile.py --json                        # shipped bundle, f16 and q8_0, 1 thread
    python bench/lora_profile.py --json --dtypes q8_0 --layouts standard,fused

A ``fused`` adapter (llama.cpp with bdc's patch, scripts/llama_patches) shows as one CUSTOM node per adapted
matrix (A x, B·h, scale and add together); for one token it has no lora_a / lora_b products of its own.

Reads ggml_tensor fields through a ctypes mirror of ggml.h; every node's name is checked against
``ggml_get_name`` so a layout change fails loudly instead of mislabelling.
"""

from __future__ import annotations

import argparse
import collections
import ctypes
import json
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bdc_assistant.machine import cpu_name  # noqa: E402

CALLBACK_OVERHEAD_OPS = ("VIEW", "RESHAPE", "PERMUTE")  # no-ops: their time is the callback's own


class _Tensor(ctypes.Structure):
    """struct ggml_tensor (ggml.h, GGML_MAX_DIMS 4, GGML_MAX_OP_PARAMS 64, GGML_MAX_SRC 10, GGML_MAX_NAME 64)."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("buffer", ctypes.c_void_p),
        ("ne", ctypes.c_int64 * 4),
        ("nb", ctypes.c_size_t * 4),
        ("op", ctypes.c_int),
        ("op_params", ctypes.c_int32 * 16),
        ("flags", ctypes.c_int32),
        ("src", ctypes.c_void_p * 10),
        ("view_src", ctypes.c_void_p),
        ("view_offs", ctypes.c_size_t),
        ("data", ctypes.c_void_p),
        ("name", ctypes.c_char * 64),
        ("extra", ctypes.c_void_p),
        ("padding", ctypes.c_char * 8),
    ]


def _ggml() -> Any:
    import llama_cpp

    lib = ctypes.CDLL(str(Path(llama_cpp.__file__).parent / "lib" / "libggml-base.so"))
    for fn, arg in (
        ("ggml_op_desc", ctypes.c_void_p),
        ("ggml_get_name", ctypes.c_void_p),
        ("ggml_type_name", ctypes.c_int),
    ):
        getattr(lib, fn).restype, getattr(lib, fn).argtypes = ctypes.c_char_p, [arg]
    return lib


def _group(lib: Any, ptr: int) -> str:
    t = _Tensor.from_address(ptr)
    if lib.ggml_get_name(ptr) != t.name:
        raise SystemExit("ggml_tensor layout differs from this script's mirror: update _Tensor")
    op = lib.ggml_op_desc(ptr).decode()
    if op != "MUL_MAT":
        return op
    src0 = _Tensor.from_address(t.src[0])
    name = src0.name.decode()
    kind = name.rsplit(".", 1)[-1]
    if kind in ("lora_a", "lora_b"):
        rows = "out" if kind == "lora_b" else "rank"
        return f"MUL_MAT {kind} {lib.ggml_type_name(src0.type).decode()} [{src0.ne[0]} x {src0.ne[1]} {rows}]"
    return "MUL_MAT base"


def profile(model_path: Path, adapter: Path | None, threads: int, tokens: int) -> dict[str, Any]:
    import llama_cpp as L

    lib = _ggml()
    acc: dict[str, float] = collections.defaultdict(float)
    cnt: dict[str, int] = collections.defaultdict(int)
    state = {"on": False, "last": 0.0}

    def callback(ptr: int, ask: bool, _user: int) -> bool:
        if ask:
            return True
        now = time.perf_counter()
        if state["on"]:
            key = _group(lib, ptr)
            acc[key] += now - state["last"]
            cnt[key] += 1
        state["last"] = time.perf_counter()
        return True

    cb = L.ggml_backend_sched_eval_callback(callback)
    L.llama_backend_init()
    model = L.llama_model_load_from_file(str(model_path).encode(), L.llama_model_default_params())
    params = L.llama_context_default_params()
    params.n_ctx, params.n_threads, params.n_threads_batch = 512, threads, threads
    params.cb_eval = cb
    ctx = L.llama_init_from_model(model, params)
    keep: list[Any] = []
    handle = None
    try:
        if adapter is not None:
            handle = L.llama_adapter_lora_init(model, str(adapter).encode())
            arr, scale = (L.llama_adapter_lora_p_ctypes * 1)(handle), (ctypes.c_float * 1)(1.0)
            keep += [arr, scale]
            L.llama_set_adapters_lora(ctx, arr, 1, scale)
        n_vocab = L.llama_vocab_n_tokens(L.llama_model_get_vocab(model))
        prompt = (ctypes.c_int32 * 8)(*(t % n_vocab for t in range(750, 758)))
        if L.llama_decode(ctx, L.llama_batch_get_one(prompt, 8)) != 0:
            raise SystemExit("llama_decode failed on the prompt")
        warm = 5
        for i in range(warm + tokens):
            state["on"], state["last"] = i >= warm, time.perf_counter()
            one = (ctypes.c_int32 * 1)((220 + i) % n_vocab)
            keep.append(one)
            if L.llama_decode(ctx, L.llama_batch_get_one(one, 1)) != 0:
                raise SystemExit("llama_decode failed")
    finally:
        if handle is not None:
            L.llama_adapter_lora_free(handle)
        L.llama_free(ctx)
        L.llama_model_free(model)
    overhead = [acc[k] / cnt[k] for k in CALLBACK_OVERHEAD_OPS if cnt.get(k)]
    per_node_us = 1e6 * min(overhead) if overhead else 0.0
    rows = {
        k: {
            "ms_per_token": round(1e3 * v / tokens, 3),
            "nodes_per_token": cnt[k] // tokens,
            "us_per_node": round(1e6 * v / cnt[k], 1),
        }
        for k, v in sorted(acc.items(), key=lambda kv: -kv[1])
    }
    lora = [k for k in rows if "lora_" in k]
    extra_nodes = ["SCALE"] if lora else []
    extra_nodes += ["CUSTOM"] if "CUSTOM" in rows else []
    lora_ms = sum(rows[k]["ms_per_token"] for k in lora + extra_nodes if k in rows)
    lora_nodes = sum(rows[k]["nodes_per_token"] for k in lora + extra_nodes if k in rows)
    return {
        "ms_per_token": round(1e3 * sum(acc.values()) / tokens, 2),
        "callback_us_per_node": round(per_node_us, 1),
        "lora_products_and_scale_ms_per_token": round(lora_ms, 3),
        "lora_ms_net_of_callback": round(lora_ms - lora_nodes * per_node_us / 1e3, 3),
        "ops": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--model", default="coder-0.5b")
    parser.add_argument("--bundle", default=str(REPO / "bdc_assistant/assets/bundles/coder-0.5b"))
    parser.add_argument("--dtypes", default="f16,q8_0", help="adapter storages to profile, comma-separated")
    parser.add_argument(
        "--layouts", default="standard", help="adapter layouts to profile, comma-separated (standard, fused)"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tokens", type=int, default=40)
    args = parser.parse_args(argv)

    from bdc_assistant.backends.llamacpp_backend import LlamaCppGenerator
    from bdc_assistant.disen.bundle import load_bundle
    from bdc_assistant.disen.llamacpp_adapter import LlamaCppAdapterSlot
    from bdc_assistant.models.embedded import install_solver

    gguf = install_solver(args.model)
    bundle = load_bundle(Path(args.bundle))
    templates: dict[str, Any] = {}
    gen = LlamaCppGenerator(gguf, n_ctx=256, threads=args.threads)
    try:
        for dtype in args.dtypes.split(","):
            for layout in args.layouts.split(","):
                slot = LlamaCppAdapterSlot(gen.llama, dtype=dtype, layout=layout)  # type: ignore[arg-type]
                templates[dtype if layout == "standard" else f"{dtype} {layout}"] = slot.template_for(bundle)
                slot.close()
    finally:
        gen.close()
    runs = {"plain": profile(gguf, None, args.threads, args.tokens)}
    for dtype, template in templates.items():
        runs[dtype] = profile(gguf, template.path, args.threads, args.tokens)
        runs[dtype]["rank_padded"] = next(iter(template.a_slots.values())).shape[0]
        runs[dtype]["lora_b_dtype"] = template.b_dtype
        runs[dtype]["layout"] = template.layout
    # plain again: the machine's drift over the run shows in the base products' time
    runs["plain (again)"] = profile(gguf, None, args.threads, args.tokens)
    result = {
        "bench": "lora_profile",
        "model": gguf.name,
        "bundle": Path(args.bundle).name,
        "cpu": cpu_name(),
        "threads": args.threads,
        "tokens": args.tokens,
        "runs": runs,
    }
    if args.json:
        print(json.dumps(result))
    else:
        for name, run in runs.items():
            print(
                f"== {name}: {run['ms_per_token']} ms/token (callback ~{run['callback_us_per_node']} µs/node), "
                f"LoRA products + scale {run['lora_ms_net_of_callback']} ms/token net"
            )
            for op, row in list(run["ops"].items())[:14]:
                print(
                    f"  {row['ms_per_token']:8.3f} ms/tok {row['nodes_per_token']:5d} nodes {row['us_per_node']:8.1f} µs  {op}"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
