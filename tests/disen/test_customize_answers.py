"""bench/customize.py's real-answer source: the app's one-turn solver prompt on the validation split, and a
natural answer length that stops at the model's end of turn (the whole-answer ratio rests on both)."""

from __future__ import annotations

import argparse

from bdc_assistant.evaluation.datasets import load_dataset
from bdc_assistant.evaluation.problem_text import solver_text
from bdc_assistant.solver import prompts as app_prompts

from ..bench_scripts import bench_script


class _Gen:
    """Renders a chat as its messages' roles and contents; one token per character."""

    def __init__(self) -> None:
        self.chats: list[list[dict[str, str]]] = []

    def render_chat(self, messages):
        self.chats.append([dict(m) for m in messages])
        return "".join(f"<{m['role']}>{m['content']}" for m in messages)

    def tokenize(self, text, add_bos=False, special=True):
        return [ord(c) for c in text]


def test_mbpp_val_answers_are_the_apps_own_prompt_on_the_validation_problems():
    customize = bench_script("customize")
    gen = _Gen()
    args = argparse.Namespace(answer_source="mbpp-val", answers=3)
    texts, ids = customize._answer_prompts(args, gen)
    val = load_dataset("mbpp-val", limit=3)
    assert texts == [solver_text(p) for p in val]
    assert gen.chats == [[{"role": "user", "content": app_prompts.direct_prompt(t).text}] for t in texts]
    assert all(i and len(i) > len(t) for i, t in zip(ids, texts, strict=True))


def test_toy_answers_keep_the_system_prompt_and_the_fixed_queries():
    customize = bench_script("customize")
    gen = _Gen()
    texts, _ = customize._answer_prompts(argparse.Namespace(answer_source="toy", answers=2), gen)
    assert texts == list(customize.PROBLEMS[:2])
    assert gen.chats[0][0] == {"role": "system", "content": customize.SYSTEM}


def test_the_natural_length_ends_at_the_end_of_turn_token_or_the_cap(tiny_models):
    from bdc_assistant.backends.llamacpp_backend import LlamaCppGenerator

    customize = bench_script("customize")
    gen = LlamaCppGenerator(tiny_models["qwen2"].gguf_path, n_ctx=256, threads=1)
    try:
        ids = gen.tokenize("def f(x):", add_bos=False, special=True)
        n = customize._natural_length(gen, ids, 7)
        assert 1 <= n <= 7
        # a cap of one token stops after the first token, whatever it is
        assert customize._natural_length(gen, ids, 1) == 1
    finally:
        gen.close()
