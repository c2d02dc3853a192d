"""Real model: a random bundle on the embedded Qwen2.5-Coder-0.5B-Instruct changes the logits the same way
on both backends — llama.cpp on the shipped Q4_K_M GGUF and torch on its dequantized fp32 copy.

The bases are not bit-identical (llama.cpp multiplies quantized weights with Q8-quantized activations),
so we compare the *change* the adapter causes ("delta of deltas", research/lora.md §7c):
D = logits(base + ΔW) − logits(base) per backend, centred per position (softmax ignores a per-position
constant), cosine(D_torch, D_cpp) ≥ 0.95 per prompt, with each prompt's own gates from the real encoder
+ hypernetwork. Negative controls run the very same measurement with the llama.cpp side deliberately
wrong — the gates transposed (rank-major instead of expert-major) and the q/k ``lora_b`` rows permuted as
for a Llama GGUF (qwen2 GGUFs keep HF's row order) — and must fall below the threshold.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

PROMPTS = (
    'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n',
    "# Read two integers and print their sum\na, b = map(int, input().split())\n",
    "import sys\n\ndef main():\n    n = int(sys.stdin.readline())\n",
    'def is_palindrome(s: str) -> bool:\n    """Check whether s reads the same backwards."""\n',
    "# Sort a list of tuples by their second element\ndata = [(1, 3), (2, 1), (4, 2)]\n",
    "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, x):\n",
    'def count_primes(n):\n    """Count the primes strictly below n using a sieve."""\n',
    "# Given an array, find the maximum subarray sum (Kadane)\ndef max_subarray(a):\n",
    "from collections import Counter\n\ndef most_common_word(text):\n",
    "def binary_search(arr, target):\n    lo, hi = 0, len(arr) - 1\n    while lo <= hi:\n",
)
SCALE = 0.05
MIN_COS = 0.95
VARIANTS = ("right", "g_transposed", "qk_permuted")


def _centered(d: np.ndarray) -> np.ndarray:
    """Logits are defined up to a constant per position (softmax ignores it): compare D minus its row mean."""
    return (d - d.mean(axis=-1, keepdims=True)).ravel()


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.fixture(scope="module")
def measured(embedded_base_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Per prompt: cosine of the centred logit change, torch vs llama.cpp, for the right and wrong variants."""
    import torch
    from llama_cpp import Llama
    from transformers import AutoModelForCausalLM

    from bdc_assistant.disen.bundle import load_bundle
    from bdc_assistant.disen.gguf_adapter import write_template
    from bdc_assistant.disen.identity import identity_of_gguf, identity_of_hf_dir
    from bdc_assistant.disen.llamacpp_adapter import LlamaCppAdapterSlot
    from bdc_assistant.disen.random_bundle import make_random_bundle
    from bdc_assistant.disen.runtime import Customizer
    from bdc_assistant.disen.torch_apply import TorchMergeSlot
    from bdc_assistant.encoder import Encoder
    from bdc_assistant.models.embedded import encoder_path
    from bdc_assistant.models.hf_cache import hf_dir_for_gguf

    hf_dir = hf_dir_for_gguf(embedded_base_gguf)  # dequantized once per machine, cached by sha256
    gguf_id, _ = identity_of_gguf(embedded_base_gguf)
    hf_id, _ = identity_of_hf_dir(hf_dir, gguf_sha256=gguf_id.gguf_sha256)
    assert gguf_id.arch == "qwen2" and gguf_id.n_layers == 24
    assert gguf_id.hf_config_hash == hf_id.hf_config_hash  # both backends accept the same bundle

    tmp = tmp_path_factory.mktemp("real")
    bundle = load_bundle(
        make_random_bundle(embedded_base_gguf, tmp / "b", K=3, r=4, seed=0, scale=SCALE, spread_gates=True),
        expect_base=gguf_id,
    )
    customizer = Customizer(bundle, Encoder(encoder_path()))

    torch.set_num_threads(2)
    llm = Llama(
        model_path=str(embedded_base_gguf),
        n_ctx=256,
        n_threads=2,
        n_threads_batch=2,
        logits_all=True,
        verbose=False,
        type_k=0,
        type_v=0,
    )
    model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    cpp_slot, torch_slot = LlamaCppAdapterSlot(llm), TorchMergeSlot(model)
    permuted = write_template(
        bundle.cat,
        tmp / "qk-permuted.gguf",
        arch="qwen2",
        n_heads=cpp_slot.n_heads,
        n_kv_heads=cpp_slot.n_kv_heads,
        bundle_id=bundle.bundle_id,
        dtype="f32",
        permute_qk=True,
    )
    cos: dict[str, list[float]] = {v: [] for v in VARIANTS}
    effects: list[float] = []
    try:
        for prompt in PROMPTS:
            ids = llm.tokenize(prompt.encode())

            def cpp(ids: list[int] = ids) -> np.ndarray:
                llm.reset()
                llm.eval(ids)
                return np.array(llm.scores[: len(ids)], dtype=np.float64)

            def tch(ids: list[int] = ids) -> np.ndarray:
                with torch.no_grad():
                    return model(torch.tensor([ids])).logits[0].double().numpy()

            custom = customizer.for_query(prompt)
            cpp_slot.clear()
            torch_slot.clear()
            base_c, base_t = cpp(), tch()
            torch_slot.apply(custom)
            d_t = tch() - base_t
            effects.append(float(np.abs(d_t).max()))
            d_t = _centered(d_t)
            g = custom.g
            g_t = g.reshape(bundle.n_layers, bundle.K, bundle.r).transpose(0, 2, 1).reshape(g.shape)
            for variant in VARIANTS:
                if variant == "right":
                    cpp_slot.apply(custom)
                elif variant == "g_transposed":
                    cpp_slot.apply_template(cpp_slot.template_for(bundle), bundle.cat, g_t)
                else:
                    cpp_slot.apply_template(permuted, bundle.cat, g)
                cos[variant].append(_cos(_centered(cpp() - base_c), d_t))
    finally:
        cpp_slot.close()
        llm.close()
    for variant in VARIANTS:
        print(f"{variant:>13}: cosines {[round(c, 4) for c in cos[variant]]}")
    print("effects (max |Δlogit| on torch)", [round(e, 2) for e in effects])
    return {"cos": cos, "effects": effects}


@pytest.mark.slow
def test_real_model_adapter_effect_agrees_between_backends(measured: dict[str, Any]) -> None:
    assert min(measured["effects"]) >= 0.3  # the adapter really moves the logits
    assert min(measured["cos"]["right"]) >= MIN_COS, measured["cos"]["right"]


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["g_transposed", "qk_permuted"])
def test_real_model_negative_controls_fall_below_the_threshold(
    measured: dict[str, Any], variant: str
) -> None:
    """The same check must reject a wrong llama.cpp side, on every prompt (else it could not tell)."""
    cos = measured["cos"][variant]
    assert max(cos) < MIN_COS, cos
