"""State hygiene on llama.cpp: query A then query B in one process gives exactly what B gives in a fresh
process (no stale KV, no leftover adapter), and 100 swaps keep RSS flat and leak no adapter handle."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from bdc_assistant.disen.bundle import load_bundle
from bdc_assistant.disen.compose import Customization
from bdc_assistant.disen.llamacpp_adapter import LlamaCppAdapterSlot

from .conftest import llama_logits, open_llama, random_g, token_ids

REPO = Path(__file__).resolve().parents[2]

_FRESH = """
import json, sys
import numpy as np
from bdc_assistant.disen.bundle import load_bundle
from bdc_assistant.disen.compose import Customization
from bdc_assistant.disen.llamacpp_adapter import LlamaCppAdapterSlot
from tests.disen.conftest import llama_logits, open_llama
args = json.loads(sys.argv[1])
bundle = load_bundle(args["bundle"])
llm = open_llama(args["gguf"])
slot = LlamaCppAdapterSlot(llm)
slot.apply(Customization.from_g(bundle, np.load(args["g"])))
np.save(args["out"], llama_logits(llm, args["ids"]))
slot.close(); llm.close()
"""


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def test_query_a_then_b_equals_fresh_process_b(tiny_models, tiny_bundles, tmp_path):
    tm = tiny_models["gemma3"]
    bundle = load_bundle(tiny_bundles["gemma3"])
    ids = token_ids(tm.vocab_size, 20, seed=21)
    g_a, g_b = random_g(bundle, 31), random_g(bundle, 32)
    llm = open_llama(tm.gguf_path)
    try:
        slot = LlamaCppAdapterSlot(llm)
        slot.apply(Customization.from_g(bundle, g_a))
        after_a = llama_logits(llm, ids)
        # the same prompt prefix is now in the KV cache, computed under A: B must not reuse it
        llm.eval(ids[:1])
        slot.apply(Customization.from_g(bundle, g_b))
        llm.eval(ids)  # high-level generate/eval path, prefix-match would bite here
        in_process_b = np.array(llm.scores[: len(ids)], dtype=np.float64)
        slot.close()
    finally:
        llm.close()
    np.save(tmp_path / "g_b.npy", g_b)
    args = {
        "bundle": str(tiny_bundles["gemma3"]),
        "gguf": str(tm.gguf_path),
        "g": str(tmp_path / "g_b.npy"),
        "ids": ids,
        "out": str(tmp_path / "fresh.npy"),
    }
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run(
        [sys.executable, "-c", _FRESH, json.dumps(args)], check=True, cwd=REPO, env=env, timeout=120
    )
    fresh_b = np.load(tmp_path / "fresh.npy")
    assert np.abs(after_a - fresh_b).max() > 0.05  # A and B really differ
    assert np.array_equal(in_process_b, fresh_b)


def test_hundred_swaps_keep_rss_flat_and_free_every_handle(tiny_models, tiny_bundles):
    tm = tiny_models["llama"]
    bundle = load_bundle(tiny_bundles["llama"])
    gs = [Customization.from_g(bundle, random_g(bundle, s)) for s in range(4)]
    ids = token_ids(tm.vocab_size, 8, seed=2)
    llm = open_llama(tm.gguf_path)
    try:
        slot = LlamaCppAdapterSlot(llm)
        for i in range(10):  # warm-up: allocator pools, graph reserve
            slot.apply(gs[i % 4])
            llama_logits(llm, ids)
        before = _rss_kb()
        for i in range(100):
            slot.apply(gs[i % 4])
            assert slot.live_handles == 1
            if i % 10 == 0:
                llama_logits(llm, ids)
        grown_kb = _rss_kb() - before
        assert slot.loads == 110 and slot.frees == 109
        slot.clear()
        assert slot.live_handles == 0 and not slot.active
        scratch = list(slot._scratch.values())
        slot.close()
        assert all(not p.exists() for p in scratch)
    finally:
        llm.close()
    # one adapter here is ~60 KB (f16); a leak of every handle would add ≥ 6 MB
    assert grown_kb < 3 * 1024, f"RSS grew by {grown_kb} KB over 100 swaps"


def test_rss_check_catches_a_slot_that_never_frees(tiny_models, tiny_bundles):
    """Negative control for the test above: with ``free`` disabled, the same measurement goes over the bar."""
    import dataclasses

    from bdc_assistant.disen.llamacpp_adapter import detect_api

    tm = tiny_models["llama"]
    bundle = load_bundle(tiny_bundles["llama"])
    gs = [Customization.from_g(bundle, random_g(bundle, s)) for s in range(4)]
    llm = open_llama(tm.gguf_path)
    try:
        slot = LlamaCppAdapterSlot(llm, api=dataclasses.replace(detect_api(), free=lambda _h: None))
        for i in range(10):
            slot.apply(gs[i % 4])
        before = _rss_kb()
        for i in range(100):
            slot.apply(gs[i % 4])
        grown_kb = _rss_kb() - before
        slot._handle = None  # handles are owned by the model now; it frees them on close
        slot.close()
    finally:
        llm.close()
    assert grown_kb >= 3 * 1024
