"""Per-query DisenLoRA cost on the embedded base solver (Qwen2.5-Coder-0.5B-Instruct): setup, decode, answer.

For each of ``--queries`` coding prompts, ``setup_ms`` times what a query pays before its first token:
encoder embedding + numpy hypernetwork + (llama.cpp) the gates written into the loaded adapter's own
lora_a tensors (after the first query; ``--reload`` or a build where they cannot be found: A* patched into
the file, adapter load, activate, free the old handle) and the KV reset — the median is reported, with a
per-stage breakdown. Decode speed is measured on the same loaded model: ``--rounds`` pairs of greedy
``--tokens``-token runs, plain base vs customized, in ABBA order; tok/s = 1 / median gap between tokens
(robust when other processes share the cores), and ``decode_ratio`` = median over pairs of customized ÷
plain. The torch backend runs in merge mode (ΔW folded into W, so its ratio should be ~1) and, with
``--hook``/on CUDA, in hook mode (unmerged, per-sample gates).

Whole answers (llama.cpp): the per-query adapter swap resets the context, so a customized query cannot
reuse the KV cache of the prompt prefix it shares with the previous query (chat template + system
prompt), which the plain base does reuse. ``--answers`` chat queries are answered ``--answer-tokens``
tokens long, plain vs customized (blocks in ABBA order); time-to-first-token includes the customization
setup; ``ttft_ratio`` / ``answer_time_ratio`` = customized ÷ plain (medians), and ``plain_cold_*`` is the
plain base with a reset before every query (what is lost to the reset alone). Both plain and customized
queries go through ``set_customization`` as the app's answers do, so ``plain_*`` is the app's plain path.
``--answer-source mbpp-val`` times real answers instead: the app's one-turn solver prompt for the first
``--answers`` validation problems (the same fixed split the trainer uses), each answer as long as the
plain model's own answer to it (greedy, up to its end-of-turn token, at most 512 tokens: measured once
before the timed blocks), so both sides decode the same number of tokens and the ratio is one of speed.

    python bench/customize.py --json                                  # llama.cpp + torch merge, CPU
    python bench/customize.py --backend torch --device cuda --json    # torch merge + hook on a GPU

The bundle is a random K=3, r=4 bundle on all 7 projections for the base (``make_random_bundle``, gates
spread over (0, 1)), cached under the app's cache dir; pass ``--bundle`` to time a trained one.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bdc_assistant.machine import cpu_name  # noqa: E402

PROMPTS = (
    'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n',
    "# Read two integers and print their sum\na, b = map(int, input().split())\n",
    'def is_palindrome(s: str) -> bool:\n    """Check whether s reads the same backwards."""\n',
    "# Sort a list of tuples by their second element\ndata = [(1, 3), (2, 1), (4, 2)]\n",
    "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, x):\n",
    'def count_primes(n):\n    """Count the primes strictly below n using a sieve."""\n',
    "# Given an array, find the maximum subarray sum (Kadane)\ndef max_subarray(a):\n",
    "from collections import Counter\n\ndef most_common_word(text):\n",
    "def binary_search(arr, target):\n    lo, hi = 0, len(arr) - 1\n    while lo <= hi:\n",
    "import sys\n\ndef main():\n    n = int(sys.stdin.readline())\n",
)
SYSTEM = (
    "You are a careful Python programmer. Read the problem, think briefly, then write one complete solution "
    "in a single ```python block. Use only the standard library, and read from stdin / write to stdout when "
    "the problem asks for it."
)
PROBLEMS = (
    "Write a function fibonacci(n) that returns the n-th Fibonacci number, with fibonacci(0) == 0.",
    "Read two integers from one line of input and print their sum.",
    "Write is_palindrome(s) that tells whether s reads the same backwards, ignoring case and spaces.",
    "Sort a list of (name, age) tuples by age, then by name, and print one per line.",
    "Implement a Stack class with push, pop, peek and is_empty.",
    "Count the primes strictly below n using a sieve; n is given on stdin.",
    "Given an array of integers, return the maximum subarray sum (Kadane's algorithm).",
    "Return the most common word in a text, ignoring punctuation and case.",
    "Implement binary search returning the index of target in a sorted list, or -1.",
    "Read n and then n lines of integers; print the median.",
)
TARGETS = {"setup_ms": 20.0, "decode_ratio": 0.95, "torch_setup_ms": 20.0, "torch_merge_decode_ratio": 0.98}


def _tok_s(gen: Any, ids: list[int], tokens: int) -> float:
    """Greedy decode of ``tokens`` tokens; 1 / median inter-token gap."""
    steps = gen.iter_greedy(ids)
    stamps: list[float] = []
    try:
        for _tok in steps:
            stamps.append(time.perf_counter())
            if len(stamps) > tokens:
                break
    finally:
        steps.close()
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    return 1.0 / statistics.median(gaps)


def _side_by_side(
    gen: Any, ids: list[int], tokens: int, rounds: int, customize: Any, plain: Any
) -> dict[str, float]:
    """Paired runs in ABBA order (plain, custom, custom, plain, …); ratio = median of per-pair ratios.

    Pairing adjacent runs and alternating the order cancels slow drifts in machine load, which on a
    shared box otherwise swing a plain-vs-custom ratio by ±30 % between runs.
    """
    plain_rates, custom_rates, ratios = [], [], []
    for i in range(rounds):
        order = ("p", "c") if i % 2 == 0 else ("c", "p")
        rates = {}
        for side in order:
            (plain if side == "p" else customize)()
            rates[side] = _tok_s(gen, ids, tokens)
        plain_rates.append(rates["p"])
        custom_rates.append(rates["c"])
        ratios.append(rates["c"] / rates["p"])
    plain()
    return {
        "plain_tok_s": round(statistics.median(plain_rates), 2),
        "custom_tok_s": round(statistics.median(custom_rates), 2),
        "ratio": round(statistics.median(ratios), 4),
        "ratios": [round(x, 3) for x in ratios],
    }


def _bundle(args: argparse.Namespace, gguf: Path, embed_dim: int) -> Path:
    if args.bundle:
        return Path(args.bundle)
    from bdc_assistant.disen.random_bundle import make_random_bundle
    from bdc_assistant.models.embedded import cached_sha256
    from bdc_assistant.paths import app_paths

    out = (
        app_paths().cache_dir
        / "bench"
        / f"random-{cached_sha256(gguf)[:12]}-K{args.K}-r{args.r}-s{args.scale}-d{embed_dim}-spread"
    )
    if not (out / "manifest.json").exists():
        make_random_bundle(
            gguf, out, K=args.K, r=args.r, seed=0, scale=args.scale, embed_dim=embed_dim, spread_gates=True
        )
    return out


def _median(xs: list[float]) -> float:
    return round(statistics.median(xs), 2) if xs else 0.0


def _natural_length(gen: Any, ids: list[int], cap: int) -> int:
    """Tokens in the plain model's greedy answer to ``ids``, up to and including its end-of-turn token."""
    llama = gen.llama
    llama.reset()
    steps = llama.generate(ids, temp=0.0, top_k=1, repeat_penalty=1.0, reset=True)
    n = 0
    try:
        for tok in steps:
            n += 1
            if gen.is_eog(tok) or n >= cap:
                break
    finally:
        steps.close()
    return n


def _answer_prompts(args: argparse.Namespace, gen: Any) -> tuple[list[str], list[list[int]]]:
    """(the queries the customizer embeds, the chat prompts' token ids) for ``--answer-source``."""
    if args.answer_source == "toy":
        texts = list(PROBLEMS[: args.answers])
        chats = [[{"role": "system", "content": SYSTEM}, {"role": "user", "content": t}] for t in texts]
    else:
        from bdc_assistant.evaluation.datasets import load_dataset
        from bdc_assistant.evaluation.problem_text import solver_text
        from bdc_assistant.solver import prompts as app_prompts

        texts = [solver_text(p) for p in load_dataset(args.answer_source, limit=args.answers)]
        # the app's chat answer: one user turn, the model's own template (and its default system prompt)
        chats = [[{"role": "user", "content": app_prompts.direct_prompt(t).text}] for t in texts]
    ids = [gen.tokenize(gen.render_chat(c), add_bos=False, special=True) for c in chats]
    return texts, ids


def _answer(gen: Any, ids: list[int], tokens: int) -> tuple[float, float, int]:
    """(seconds to the first token, seconds to ``tokens`` tokens, prompt tokens reused from the KV cache).

    Goes through ``Llama.generate(reset=True)`` like the app's chat path: it keeps the KV of the longest
    prefix the new prompt shares with what the context already holds.
    """
    llama = gen.llama
    held = list(llama._input_ids[: llama.n_tokens])
    reused = 0
    for a, b in zip(held, ids[:-1], strict=False):
        if a != b:
            break
        reused += 1
    t0 = time.perf_counter()
    first = 0.0
    steps = llama.generate(ids, temp=0.0, top_k=1, repeat_penalty=1.0, reset=True)
    n = 0
    try:
        for _tok in steps:
            n += 1
            if n == 1:
                first = time.perf_counter() - t0
            if n >= tokens:
                break
    finally:
        steps.close()
    return first, time.perf_counter() - t0, reused


def bench_answers(args: argparse.Namespace, gen: Any, customizer: Any) -> dict[str, Any]:
    """Chat queries answered in full, plain vs customized vs plain-with-reset, in ABBA blocks."""
    texts, prompts = _answer_prompts(args, gen)
    if args.answer_source == "toy":
        lengths = [args.answer_tokens] * len(prompts)
    else:
        gen.set_customization(None)
        lengths = [_natural_length(gen, ids, 512) for ids in prompts]
    customs = [customizer.for_query(t) for t in texts]
    rows: dict[str, list[tuple[float, float, int]]] = {"plain": [], "custom": [], "cold": []}

    def block(mode: str) -> None:
        gen.set_customization(None)  # every block starts from an empty context
        for i, ids in enumerate(prompts):
            t0 = time.perf_counter()
            if mode == "cold":
                gen.llama.reset()
            else:  # what the app does before every answer
                gen.set_customization(customs[i] if mode == "custom" else None)
            setup = time.perf_counter() - t0
            first, total, reused = _answer(gen, ids, lengths[i])
            if i:  # the first query of a block has nothing to reuse in any mode
                rows[mode].append((setup + first, setup + total, reused))

    order = ("plain", "custom", "cold", "cold", "custom", "plain")
    for r in range(args.answer_rounds):
        for mode in order if r % 2 == 0 else order[::-1]:
            block(mode)
    gen.set_customization(None)

    def med(mode: str, k: int) -> float:
        return statistics.median(x[k] for x in rows[mode])

    return {
        "answer_source": args.answer_source,
        "answer_queries": len(prompts) - 1,
        "answer_tokens": args.answer_tokens if args.answer_source == "toy" else "natural",
        "answer_tokens_median": statistics.median(lengths[1:]),
        "answer_prompt_tokens_median": statistics.median(len(p) for p in prompts),
        "plain_prefix_reused_tokens_median": med("plain", 2),
        "custom_prefix_reused_tokens_median": med("custom", 2),
        "plain_ttft_ms": round(med("plain", 0) * 1e3, 1),
        "custom_ttft_ms": round(med("custom", 0) * 1e3, 1),
        "plain_cold_ttft_ms": round(med("cold", 0) * 1e3, 1),
        "ttft_ratio": round(med("custom", 0) / med("plain", 0), 3),
        "plain_answer_s": round(med("plain", 1), 3),
        "custom_answer_s": round(med("custom", 1), 3),
        "plain_cold_answer_s": round(med("cold", 1), 3),
        "answer_time_ratio": round(med("custom", 1) / med("plain", 1), 3),
    }


def bench_llamacpp(args: argparse.Namespace, gguf: Path, bundle: Any, customizer: Any) -> dict[str, Any]:
    from bdc_assistant.backends.llamacpp_backend import LlamaCppGenerator

    gen = LlamaCppGenerator(gguf, n_ctx=args.n_ctx, threads=args.threads)
    if args.adapter_dtype != "auto" or args.reload or args.adapter_layout != "auto":
        from bdc_assistant.disen.llamacpp_adapter import LlamaCppAdapterSlot

        gen._slot = LlamaCppAdapterSlot(
            gen.llama, dtype=args.adapter_dtype, in_place=not args.reload, layout=args.adapter_layout
        )
    try:
        stages: dict[str, list[float]] = {k: [] for k in ("embed", "hypernet", "patch", "init", "swap")}
        setups: list[float] = []
        first = None
        customs = []
        for i in range(args.queries + 1):
            prompt = PROMPTS[i % len(PROMPTS)]
            t0 = time.perf_counter()
            custom = customizer.for_query(prompt)
            gen.set_customization(custom)
            ms = (time.perf_counter() - t0) * 1e3
            customs.append(custom)
            if i == 0:  # the first query also writes/reads the bundle's adapter template
                first = {"setup_ms": round(ms, 2), **{k: round(v, 2) for k, v in gen._slot.last_ms.items()}}
                continue
            setups.append(ms)
            stages["embed"].append(custom.embed_ms)
            stages["hypernet"].append(custom.hypernet_ms)
            for k in ("patch", "init", "swap"):
                stages[k].append(gen._slot.last_ms[k])
        ids = gen.tokenize(PROMPTS[0])
        custom = customs[1]
        dec = _side_by_side(
            gen,
            ids,
            args.tokens,
            args.rounds,
            lambda: gen.set_customization(custom),
            lambda: gen.set_customization(None),
        )
        answers = bench_answers(args, gen, customizer) if args.answers > 1 else {}
        return {
            **answers,
            "adapter_dtype": gen._slot._dtype,
            "adapter_layout": gen._slot.layout,
            "setup_ms": _median(setups),
            "setup_ms_max": round(max(setups), 2),
            "setup_breakdown_ms": {k: _median(v) for k, v in stages.items()},
            "first_query": first,
            "decode_tok_s_plain": dec["plain_tok_s"],
            "decode_tok_s_custom": dec["custom_tok_s"],
            "decode_ratio": dec["ratio"],
            "decode_ratio_per_round": dec["ratios"],
            "live_handles": gen._slot.live_handles,
            "adapter_loads": gen._slot.loads,
            "in_place_patches": gen._slot.in_place_patches,
        }
    finally:
        gen.close()


def bench_torch(
    args: argparse.Namespace, gguf: Path, bundle: Any, customizer: Any, hook: bool
) -> dict[str, Any]:
    import torch

    from bdc_assistant.backends.torch_backend import TorchGenerator
    from bdc_assistant.disen.torch_apply import GateHooks
    from bdc_assistant.models.hf_cache import hf_dir_for_gguf

    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    gen = TorchGenerator(hf_dir_for_gguf(gguf), device=args.device)
    tokens = args.torch_tokens or (args.tokens if gen.device.startswith("cuda") else 32)
    out: dict[str, Any] = {
        "torch_weights": "dequantized from the GGUF",
        "torch_device": gen.device,
        "torch_dtype": str(gen.dtype).replace("torch.", ""),
        "torch_tokens": tokens,
    }
    try:
        customs, merge_ms, setup_ms, embed_ms = [], [], [], []
        for i in range(args.queries + 1):
            t0 = time.perf_counter()
            custom = customizer.for_query(PROMPTS[i % len(PROMPTS)])
            t1 = time.perf_counter()
            gen.set_customization(custom)
            t2 = time.perf_counter()
            customs.append(custom)
            if i:  # the first apply also copies the pristine W0 and uploads A_cat/B_cat
                merge_ms.append((t2 - t1) * 1e3)
                setup_ms.append((t2 - t0) * 1e3)
                embed_ms.append(custom.embed_ms)
        out["torch_merge_setup_ms"] = _median(merge_ms)
        out["torch_setup_ms"] = _median(setup_ms)  # embed + hypernetwork + merge: what a query pays
        out["torch_setup_embed_ms"] = _median(embed_ms)
        ids = gen.tokenize(PROMPTS[0])
        custom = customs[1]
        dec = _side_by_side(
            gen,
            ids,
            tokens,
            args.rounds,
            lambda: gen.set_customization(custom),
            lambda: gen.set_customization(None),
        )
        out.update(
            torch_merge_tok_s_plain=dec["plain_tok_s"],
            torch_merge_tok_s_custom=dec["custom_tok_s"],
            torch_merge_decode_ratio=dec["ratio"],
        )
        if hook:
            gen.set_customization(None)
            hooks = GateHooks(gen.model, bundle)
            g = torch.tensor(custom.g)[None]
            try:
                dec = _side_by_side(
                    gen, ids, tokens, args.rounds, lambda: hooks.set_gates(g), lambda: hooks.set_gates(None)
                )
            finally:
                hooks.remove()
            out.update(
                torch_hook_tok_s_plain=dec["plain_tok_s"],
                torch_hook_tok_s_custom=dec["custom_tok_s"],
                torch_hook_decode_ratio=dec["ratio"],
            )
        return out
    finally:
        gen.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.add_argument("--backend", choices=("both", "llamacpp", "torch"), default="both")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="torch device")
    parser.add_argument("--hook", action="store_true", help="also time torch hook mode (default on CUDA)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=256, help="decoded tokens per run (llama.cpp)")
    parser.add_argument(
        "--torch-tokens", type=int, default=0, help="torch tokens; 0 = --tokens on CUDA, 32 on CPU"
    )
    parser.add_argument(
        "--encoder-backend",
        choices=("auto", "llamacpp", "sentence-transformers"),
        default="auto",
        help="what runs the encoder (auto: what the app picks, [models] encoder_backend)",
    )
    parser.add_argument(
        "--encoder-threads",
        type=int,
        default=0,
        help="encoder threads (0: the app's choice: llama.cpp min(4, cores), torch 1 per query)",
    )
    parser.add_argument(
        "--adapter-dtype",
        choices=("auto", "f16", "f32", "q8_0"),
        default="auto",
        help="llama.cpp adapter tensors (auto: what the app picks for this bundle)",
    )
    parser.add_argument(
        "--adapter-layout",
        choices=("auto", "standard", "fused"),
        default="auto",
        help="llama.cpp adapter layout (auto: fused where llama.cpp carries bdc's patch, else standard)",
    )
    parser.add_argument(
        "--reload",
        action="store_true",
        help="llama.cpp: reload the patched adapter file every query (the fallback), not write in place",
    )
    parser.add_argument("--queries", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=6, help="paired plain/custom decode runs (ABBA order)")
    parser.add_argument("--answers", type=int, default=6, help="chat queries for the whole-answer timing")
    parser.add_argument("--answer-tokens", type=int, default=64, help="tokens per whole answer (toy source)")
    parser.add_argument(
        "--answer-source",
        choices=("toy", "mbpp-val"),
        default="toy",
        help="whole-answer queries: short toy chat queries cut at --answer-tokens, or the app's solver "
        "prompt on validation problems, answered as long as the plain model answers them",
    )
    parser.add_argument("--answer-rounds", type=int, default=1, help="ABBA rounds of the whole-answer timing")
    parser.add_argument(
        "--model",
        choices=("coder-0.5b", "coder-1.5b", "gemma-270m"),
        default="coder-0.5b",
        help="base solver",
    )
    parser.add_argument(
        "--gguf",
        default="",
        help="time this GGUF instead of --model (e.g. the same file with its tensor data zeroed, where the "
        "real weights cannot travel: speed does not depend on the weights' values)",
    )
    parser.add_argument("--n-ctx", type=int, default=1024)
    parser.add_argument("--bundle", default="", help="bundle dir; default: a cached random bundle")
    parser.add_argument(
        "--encoder", default="", help="sentence-transformers dir; default: the embedded all-MiniLM-L6-v2"
    )
    parser.add_argument("--K", type=int, default=3)
    parser.add_argument("--r", type=int, default=4)
    parser.add_argument("--scale", type=float, default=0.05)
    args = parser.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from bdc_assistant.disen.bundle import load_bundle
    from bdc_assistant.disen.identity import identity_of_gguf
    from bdc_assistant.disen.runtime import Customizer
    from bdc_assistant.encoder import Encoder, select_encoder
    from bdc_assistant.models.embedded import encoder_path, install_solver

    gguf = Path(args.gguf) if args.gguf else install_solver(args.model)
    encoder = select_encoder(
        Path(args.encoder) if args.encoder else encoder_path(),
        args.encoder_backend,
        threads=args.encoder_threads,
    )
    if isinstance(encoder, Encoder) and args.device == "cpu" and args.encoder_threads > 0:
        import torch

        torch.set_num_threads(args.encoder_threads)
    encoder.embed(["warm up"])  # model load is a one-time cost, not a per-query one
    bundle_dir = _bundle(args, gguf, encoder.dim)
    base_id, _ = identity_of_gguf(gguf)
    bundle = load_bundle(bundle_dir, expect_base=base_id)
    customizer = Customizer(bundle, encoder)
    result: dict[str, Any] = {
        "bench": "customize",
        "model": gguf.name,
        "bundle": str(bundle_dir),
        "K": bundle.K,
        "r": bundle.r,
        "targets": len(bundle.targets),
        "threads": args.threads,
        "encoder_threads": getattr(encoder, "threads", args.encoder_threads),
        "encoder_backend": "llamacpp" if not isinstance(encoder, Encoder) else "sentence-transformers",
        "tokens": args.tokens,
        "queries": args.queries,
        "rounds": args.rounds,
        "cpu": cpu_name(),
        "encoder": encoder.name,
        "targets_spec": TARGETS,
        "llamacpp_weights": f"{gguf.name} (--gguf)" if args.gguf else "GGUF Q4_K_M as shipped",
        "load_avg_start": [round(x, 2) for x in os.getloadavg()],
    }
    if args.backend in ("both", "llamacpp"):
        result.update(bench_llamacpp(args, gguf, bundle, customizer))
    if args.backend in ("both", "torch"):
        result.update(bench_torch(args, gguf, bundle, customizer, hook=args.hook or args.device == "cuda"))
        if args.device == "cuda":
            import torch

            result["gpu"] = torch.cuda.get_device_name(0)
    met = {
        k: (result[k] <= v if k.endswith("setup_ms") else result[k] >= v)
        for k, v in TARGETS.items()
        if k in result
    }
    result["meets_targets"] = met
    result["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>28}: {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
