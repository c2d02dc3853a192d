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


# RSS is measured in a fresh interpreter: inside a long pytest process, earlier tests leave freed pages
# that malloc reuses without RSS growing, which would hide a leak (the negative control caught this).
_SWAPS = """
import dataclasses, json, sys
from pathlib import Path
from bdc_assistant.disen.bundle import load_bundle
from bdc_assistant.disen.compose import Customization
from bdc_assistant.disen.llamacpp_adapter import LlamaCppAdapterSlot, detect_api
from tests.disen.conftest import llama_logits, open_llama, random_g, token_ids

def rss_kb():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0

args = json.loads(sys.argv[1])
bundle = load_bundle(args["bundle"])
gs = [Customization.from_g(bundle, random_g(bundle, s)) for s in range(4)]
ids = token_ids(args["vocab"], 8, seed=2)
llm = open_llama(args["gguf"])
api = dataclasses.replace(detect_api(), free=lambda _h: None) if args["leak"] else None
slot = LlamaCppAdapterSlot(llm, api=api) if api else LlamaCppAdapterSlot(llm, in_place=args["in_place"])
for i in range(10):  # warm-up: allocator pools, graph reserve
    slot.apply(gs[i % 4])
    llama_logits(llm, ids)
before = rss_kb()
live = []
for i in range(100):
    slot.apply(gs[i % 4])
    live.append(slot.live_handles)
    if i % 10 == 0:
        llama_logits(llm, ids)
out = {"grown_kb": rss_kb() - before, "loads": slot.loads, "frees": slot.frees, "live": live,
       "in_place": slot.in_place_patches}
if args["leak"]:
    slot._handle = None  # handles are owned by the model now; it frees them on close
else:
    slot.clear()
    out["live_after_clear"] = slot.live_handles
    out["active_after_clear"] = bool(slot.active)
    scratch = list(slot._scratch.values())
slot.close()
out["live_after_close"] = slot.live_handles
if not args["leak"]:
    out["scratch_left"] = [str(p) for p in scratch if p.exists()]
llm.close()
print(json.dumps(out))
"""


def _swap_run(tm, bundle_dir, leak: bool, in_place: bool = False) -> dict:
    args = {
        "gguf": str(tm.gguf_path),
        "bundle": str(bundle_dir),
        "vocab": tm.vocab_size,
        "leak": leak,
        "in_place": in_place,
    }
    proc = subprocess.run(
        [sys.executable, "-c", _SWAPS, json.dumps(args)],
        capture_output=True, text=True, cwd=REPO, timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_hundred_swaps_keep_rss_flat_and_free_every_handle(tiny_models, tiny_bundles):
    out = _swap_run(tiny_models["llama"], tiny_bundles["llama"], leak=False)
    assert out["live"] == [1] * 100
    assert out["loads"] == 110 and out["frees"] == 109 and out["in_place"] == 0
    assert out["live_after_clear"] == 0 and not out["active_after_clear"]
    assert out["scratch_left"] == []
    # one adapter here is ~60 KB (f16); a leak of every handle would add ≥ 6 MB
    assert out["grown_kb"] < 3 * 1024, f"RSS grew by {out['grown_kb']} KB over 100 swaps"


def test_in_place_swaps_load_once_keep_rss_flat_and_free_at_close(tiny_models, tiny_bundles):
    out = _swap_run(tiny_models["llama"], tiny_bundles["llama"], leak=False, in_place=True)
    assert out["loads"] == 1 and out["frees"] == 0 and out["in_place"] == 109  # every query after the first
    assert out["live"] == [1] * 100
    assert out["live_after_clear"] == 1 and not out["active_after_clear"]  # kept loaded, inactive
    assert out["live_after_close"] == 0 and out["scratch_left"] == []
    assert out["grown_kb"] < 3 * 1024, f"RSS grew by {out['grown_kb']} KB over 100 swaps"


def test_rss_check_catches_a_slot_that_never_frees(tiny_models, tiny_bundles):
    """Negative control for the test above: with ``free`` disabled, the same measurement goes over the bar."""
    out = _swap_run(tiny_models["llama"], tiny_bundles["llama"], leak=True)
    assert out["grown_kb"] >= 3 * 1024
