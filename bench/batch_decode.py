"""How much one llama.cpp process gains from decoding several sequences at once (continuous batching).

Deep mode, ``bdc collect`` and ``bdc deep-bench`` keep several problems in flight against one
``llama_cpp.server`` per model, which answers one request at a time. A server that batched the sequences
would multiply throughput only if a decode step of N sequences costs much less than N single steps, as it
does on a GPU or a memory-bound CPU. This bench measures that factor for a local GGUF: N sequences of an
``--prompt``-token prompt, then ``--steps`` decode steps with one token per sequence in one ``llama_decode``;
total tok/s and the speed-up over N = 1.

    python bench/batch_decode.py --json                    # the 0.5B and, if installed, the 1.5B
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bdc_assistant.machine import cpu_name  # noqa: E402


def _decode(L: Any, ctx: Any, batch: Any, n_vocab: int, entries: list[tuple[int, int, int, bool]]) -> float:
    """Seconds for one llama_decode of (token, position, sequence, wants logits) entries."""
    batch.n_tokens = len(entries)
    for i, (tok, pos, seq, logits) in enumerate(entries):
        batch.token[i], batch.pos[i], batch.n_seq_id[i] = tok % n_vocab, pos, 1
        batch.seq_id[i][0], batch.logits[i] = seq, logits
    start = time.perf_counter()
    if L.llama_decode(ctx, batch) != 0:
        raise SystemExit("llama_decode failed")
    return time.perf_counter() - start


def measure(
    gguf: Path, n_seqs: tuple[int, ...], threads: int, prompt: int, steps: int
) -> list[dict[str, Any]]:
    import llama_cpp as L

    L.llama_backend_init()
    model = L.llama_model_load_from_file(str(gguf).encode(), L.llama_model_default_params())
    n_vocab = L.llama_vocab_n_tokens(L.llama_model_get_vocab(model))
    rows = []
    try:
        for n in n_seqs:
            params = L.llama_context_default_params()
            params.n_ctx, params.n_seq_max = (prompt + steps + 16) * n, n
            params.n_threads = params.n_threads_batch = threads
            ctx = L.llama_init_from_model(model, params)
            batch = L.llama_batch_init(max(prompt, n), 0, n)

            try:
                prompt_s = sum(
                    _decode(
                        L, ctx, batch, n_vocab, [(750 + j + s, j, s, j == prompt - 1) for j in range(prompt)]
                    )
                    for s in range(n)
                )
                step_s = statistics.median(
                    _decode(L, ctx, batch, n_vocab, [(220 + k, prompt + k, s, True) for s in range(n)])
                    for k in range(steps)
                )
            finally:
                L.llama_batch_free(batch)
                L.llama_free(ctx)
            rows.append(
                {
                    "sequences": n,
                    "step_ms": round(1e3 * step_s, 2),
                    "decode_tok_s": round(n / step_s, 2),
                    "prompt_tok_s": round(prompt * n / prompt_s, 1),
                }
            )
    finally:
        L.llama_model_free(model)
    for row in rows:
        row["speedup_over_one"] = round(row["decode_tok_s"] / rows[0]["decode_tok_s"], 3)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--models", default="coder-0.5b,coder-1.5b", help="embedded model names, comma-separated"
    )
    parser.add_argument("--sequences", default="1,2,4,8")
    parser.add_argument("--threads", type=int, default=0, help="0 = the app's default for this machine")
    parser.add_argument("--prompt", type=int, default=80)
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args(argv)

    from bdc_assistant.backends.llamacpp_backend import resolve_threads
    from bdc_assistant.models.embedded import solver_gguf_path

    threads = resolve_threads(args.threads)
    n_seqs = tuple(int(x) for x in args.sequences.split(","))
    models: dict[str, Any] = {}
    for name in args.models.split(","):
        path = solver_gguf_path(name)
        if not path.exists():
            print(f"{name} is not installed (bdc models install {name}); skipped", file=sys.stderr)
            continue
        models[name] = {"file": path.name, "rows": measure(path, n_seqs, threads, args.prompt, args.steps)}
    result = {
        "bench": "batch_decode",
        "cpu": cpu_name(),
        "threads": threads,
        "prompt_tokens": args.prompt,
        "steps": args.steps,
        "models": models,
    }
    if args.json:
        print(json.dumps(result))
    else:
        for name, entry in models.items():
            for row in entry["rows"]:
                print(f"{name}: {row}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
