"""The query encoder on its two runtimes, side by side: llama.cpp (the converted GGUF) vs sentence-transformers.

Per runtime, on the same machine in one run:
  * ``embed_ms``: median time to embed one problem statement (the per-query cost of a customized answer),
    warm, over ``--queries`` statements from bench/customize.py's PROBLEMS;
  * ``cold_s`` / ``cold_rss_mib``: a fresh process from ``import`` to its first embedding, and its peak
    memory (what the first customized answer of a session pays: on sentence-transformers that includes
    importing torch);
  * ``min_cosine``: the worst cosine between the two runtimes' embeddings of the same statements.

    python bench/encoder.py --json        # one JSON line; ratios are llama.cpp ÷ sentence-transformers
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from customize import PROBLEMS

from bdc_assistant.machine import cpu_name

COLD = """
import sys, time
t0 = time.perf_counter()
from pathlib import Path
from bdc_assistant.encoder import select_encoder
enc = select_encoder(Path(sys.argv[1]), sys.argv[2], threads=int(sys.argv[3]))
enc.embed(["Write a function to reverse a string."])
# VmHWM, not ru_maxrss: the latter keeps the forking parent's peak across exec
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(time.perf_counter() - t0, hwm / 1024, "torch" in sys.modules)
"""


def _warm(enc: Any, texts: list[str], queries: int) -> tuple[float, Any]:
    import numpy as np

    enc.embed(["warm up"])
    times = []
    for i in range(queries):
        t0 = time.perf_counter()
        enc.embed([texts[i % len(texts)]])
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times), np.asarray(enc.embed(texts))


def _cold(src: Path, backend: str, threads: int, runs: int) -> dict[str, Any]:
    secs, rss, torch_loaded = [], [], []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", COLD, str(src), backend, str(threads)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
        s, m, t = out.stdout.split()[-3:]
        secs.append(float(s))
        rss.append(float(m))
        torch_loaded.append(t == "True")
    return {
        "cold_s": round(statistics.median(secs), 3),
        "cold_rss_mib": round(statistics.median(rss)),
        "imports_torch": any(torch_loaded),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true", help="print one JSON line")
    p.add_argument("--queries", type=int, default=60)
    p.add_argument("--cold-runs", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="llama.cpp threads (0: the app's choice)")
    args = p.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import numpy as np

    from bdc_assistant.encoder import Encoder, LlamaCppEncoder, select_encoder
    from bdc_assistant.models.embedded import encoder_path

    src = encoder_path()
    texts = list(PROBLEMS)
    ours = select_encoder(src, "llamacpp", threads=args.threads)
    assert isinstance(ours, LlamaCppEncoder)
    ref = Encoder(src)
    # the app's sentence-transformers path: one torch thread per query (see Encoder.embed)
    llama_ms, llama_vecs = _warm(ours, texts, args.queries)
    st_ms, st_vecs = _warm(ref, texts, args.queries)
    result: dict[str, Any] = {
        "bench": "encoder",
        "cpu": cpu_name(),
        "cores": len(os.sched_getaffinity(0)),
        "encoder": ours.name,
        "llamacpp_threads": ours.threads,
        "queries": args.queries,
        "llamacpp": {"embed_ms": round(llama_ms, 2), **_cold(src, "llamacpp", ours.threads, args.cold_runs)},
        "sentence_transformers": {
            "embed_ms": round(st_ms, 2),
            **_cold(src, "sentence-transformers", 0, args.cold_runs),
        },
        "min_cosine": round(float(np.min(np.sum(llama_vecs * st_vecs, axis=1))), 7),
    }
    result["embed_ratio"] = round(llama_ms / st_ms, 3)
    result["cold_ratio"] = round(result["llamacpp"]["cold_s"] / result["sentence_transformers"]["cold_s"], 3)
    if args.json:
        print(json.dumps(result))
    else:
        for side in ("llamacpp", "sentence_transformers"):
            r = result[side]
            print(
                f"{side:<22} embed {r['embed_ms']:>6.2f} ms   cold {r['cold_s']:>6.2f} s   "
                f"{r['cold_rss_mib']:>5} MiB   torch loaded: {r['imports_torch']}"
            )
        print(
            f"llama.cpp ÷ sentence-transformers: embed {result['embed_ratio']}, cold {result['cold_ratio']}; "
            f"worst cosine {result['min_cosine']} ({result['cpu']}, {result['cores']} cores)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
