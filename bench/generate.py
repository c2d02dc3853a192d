"""Decode speed of the two backends on the embedded base solver (Qwen2.5-Coder-0.5B-Instruct), side by side.

llama.cpp runs the shipped Q4_K_M GGUF (``llamacpp_weights``); torch runs the same model dequantized to
f32 (``torch_weights``: the cached HF dir ``bdc`` builds for the torch backend; built here on first use,
~2 min). Both decode greedily from the same prompt. Decode tok/s excludes the prompt: every token of ``iter_greedy`` is time-stamped;
``*_tok_s`` = 1 / median gap between tokens over all ``--repeats`` (robust when other processes share
the cores), ``*_tok_s_mean`` = N / fastest whole decode. ``ratio`` = llamacpp_tok_s / torch_tok_s.

    python bench/generate.py --json                 # one JSON line
    python bench/generate.py --tokens 64 --threads 2
    python bench/generate.py --model coder-1.5b --backends llamacpp --json   # after `bdc models install coder-1.5b`
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bdc_assistant.machine import cpu_name  # noqa: E402

PROMPT = 'def fibonacci(n):\n    """Return the n-th Fibonacci number, with fibonacci(0) == 0."""\n'


def _time_decode(gen: Any, ids: list[int], tokens: int, repeats: int) -> dict[str, float]:
    """Per-token wall times of a greedy decode; decode rate from the median gap (robust to a busy box)."""
    gaps: list[float] = []
    prefill = float("inf")
    spans: list[float] = []
    for _ in range(repeats):
        steps = gen.iter_greedy(ids)
        t0 = time.perf_counter()
        stamps = []
        for _tok in steps:
            stamps.append(time.perf_counter())
            if len(stamps) > tokens:
                break
        steps.close()
        prefill = min(prefill, stamps[0] - t0)
        gaps.extend(b - a for a, b in itertools.pairwise(stamps))
        spans.append(stamps[-1] - stamps[0])
    median_gap = statistics.median(gaps)
    return {
        "tok_s": 1.0 / median_gap,
        "tok_s_mean": tokens / min(spans),
        "prefill_s": prefill,
    }


def _gguf_weights(path: Path) -> str:
    """The file type a GGUF declares (e.g. MOSTLY_Q4_K_M), to say what llama.cpp really multiplies."""
    import gguf as gguf_lib

    try:
        reader = gguf_lib.GGUFReader(str(path))
        field = reader.fields.get("general.file_type")
        return gguf_lib.LlamaFileType(int(field.contents())).name if field is not None else "unknown"
    except (ValueError, KeyError, OSError):
        return "unknown"


def run(
    tokens: int,
    threads: int,
    repeats: int,
    backends: list[str],
    gguf: Path | None,
    model: str | None = None,
) -> dict[str, Any]:
    from bdc_assistant.models import embedded

    path = gguf or embedded.install_solver(model or embedded.DEFAULT_SOLVER)
    result: dict[str, Any] = {
        "bench": "generate",
        "model": path.name,
        "tokens": tokens,
        "threads": threads,
        "repeats": repeats,
    }
    ids: list[int] | None = None
    if "llamacpp" in backends:
        from bdc_assistant.backends.llamacpp_backend import LlamaCppGenerator

        t0 = time.perf_counter()
        gen = LlamaCppGenerator(path, n_ctx=1024, threads=threads)
        result["llamacpp_load_s"] = round(time.perf_counter() - t0, 3)
        result["llamacpp_weights"] = f"GGUF {_gguf_weights(path)} (as shipped)"
        ids = gen.tokenize(PROMPT)
        stats = _time_decode(gen, ids, tokens, repeats)
        result["llamacpp_tok_s"] = round(stats["tok_s"], 2)
        result["llamacpp_tok_s_mean"] = round(stats["tok_s_mean"], 2)
        result["llamacpp_prefill_s"] = round(stats["prefill_s"], 4)
        result["llamacpp_sample"] = gen.detokenize(gen.greedy_tokens(ids, 16))
        gen.close()
    if "torch" in backends:
        import torch

        from bdc_assistant.backends.torch_backend import TorchGenerator
        from bdc_assistant.models import hf_cache

        torch.set_num_threads(threads)
        t0 = time.perf_counter()
        hf_dir = hf_cache.hf_dir_for_gguf(path)
        result["torch_cache_s"] = round(time.perf_counter() - t0, 3)
        t0 = time.perf_counter()
        tgen = TorchGenerator(hf_dir, device="cpu")
        result["torch_load_s"] = round(time.perf_counter() - t0, 3)
        result["torch_weights"] = f"dequantized from the GGUF to {str(tgen.dtype).replace('torch.', '')}"
        tids = tgen.tokenize(PROMPT)
        result["same_prompt_ids"] = ids is None or tids == ids
        stats = _time_decode(tgen, tids, tokens, repeats)
        result["torch_tok_s"] = round(stats["tok_s"], 2)
        result["torch_tok_s_mean"] = round(stats["tok_s_mean"], 2)
        result["torch_prefill_s"] = round(stats["prefill_s"], 4)
        result["torch_threads"] = torch.get_num_threads()
        result["torch_sample"] = tgen.detokenize(tgen.greedy_tokens(tids, 16))
        tgen.close()
    if "llamacpp_tok_s" in result and "torch_tok_s" in result:
        result["ratio"] = round(result["llamacpp_tok_s"] / max(result["torch_tok_s"], 1e-9), 2)
    result["machine"] = _machine()
    return result


def _machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpu": cpu_name(),
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    try:
        import llama_cpp

        info["llama_cpp_python"] = llama_cpp.__version__
    except ImportError:
        pass
    try:
        import torch

        info["torch"] = torch.__version__
        info["cuda"] = bool(torch.cuda.is_available())
    except ImportError:
        pass
    try:
        load1, load5, load15 = os.getloadavg()
        info["load_avg_1m"] = round(load1, 2)
        info["load_avg_1_5_15"] = [round(x, 2) for x in (load1, load5, load15)]
    except OSError:
        pass
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.add_argument("--tokens", type=int, default=48, help="decoded tokens per timing (default 48)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for both backends (default 2)")
    parser.add_argument("--repeats", type=int, default=1, help="best of this many timings (default 1)")
    parser.add_argument("--backends", default="llamacpp,torch", help="comma list: llamacpp,torch")
    parser.add_argument("--gguf", type=Path, default=None, help="another GGUF (default: the embedded solver)")
    parser.add_argument(
        "--model",
        choices=("coder-0.5b", "coder-1.5b", "gemma-270m"),
        default=None,
        help="embedded solver to time (default coder-0.5b; coder-1.5b needs `bdc models install coder-1.5b`)",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(backends) - {"llamacpp", "torch"}
    if unknown or args.tokens < 1 or args.threads < 1 or args.repeats < 1:
        parser.error("backends must be llamacpp/torch; tokens, threads and repeats must be >= 1")
    from bdc_assistant.errors import BdcError

    try:
        result = run(args.tokens, args.threads, args.repeats, backends, args.gguf, args.model)
    except BdcError as exc:
        print(f"bdc: {exc}", file=sys.stderr)
        return exc.exit_code
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        for key, value in result.items():
            print(f"{key:>20}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
