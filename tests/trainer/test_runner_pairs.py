"""Stage bookkeeping (skip on rerun, rerun on change) and the SFT pair / answer-only-loss encoding."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bdc_assistant.errors import ConfigError
from bdc_assistant.solver import prompts as app_prompts
from trainer.config import load_config
from trainer.data import Trajectory
from trainer.modeling import encode
from trainer.pairs import build_pairs, numbered_plan
from trainer.runner import Context, run_stage


def test_finished_stage_is_skipped_and_rerun_when_its_config_changes(tmp_path: Path) -> None:
    calls: list[str] = []

    def fake(name: str):
        def fn(ctx: Context) -> dict:
            calls.append(name)
            (ctx.dir(name) / "out.txt").write_text(name)
            return {"n": len(calls), "data_hash": "h" if name == "data" else None}

        return fn

    cfg = load_config(None)
    ctx = Context(cfg, tmp_path)
    rec = run_stage(ctx, "data", fake("data"), log=lambda _: None)
    run_stage(ctx, "cluster", fake("cluster"), log=lambda _: None)
    assert (
        rec["data_hash"] == "h"
        and json.loads((tmp_path / "cluster" / "stage.json").read_text())["data_hash"] == "h"
    )
    assert (tmp_path / "cluster" / "config.resolved.toml").exists()
    run_stage(ctx, "data", fake("data"), log=lambda _: None)
    run_stage(ctx, "cluster", fake("cluster"), log=lambda _: None)
    assert calls == ["data", "cluster"]  # both skipped on rerun
    ctx2 = Context(load_config(None, ["cluster.k=3"]), tmp_path)
    run_stage(ctx2, "data", fake("data"), log=lambda _: None)
    run_stage(ctx2, "cluster", fake("cluster"), log=lambda _: None)
    assert calls == ["data", "cluster", "cluster"]  # only the changed stage reran
    ctx3 = Context(load_config(None, ["cluster.k=3"]), tmp_path, {"data": "new-input-files"})
    run_stage(ctx3, "data", fake("data"), log=lambda _: None)
    with pytest.raises(ConfigError, match="has not finished"):
        ctx3.key("evaluate")


def test_crashed_stage_reruns_from_a_clean_dir(tmp_path: Path) -> None:
    ctx = Context(load_config(None), tmp_path)

    def boom(c: Context) -> dict:
        (c.dir("data") / "partial").write_text("x")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        run_stage(ctx, "data", boom, log=lambda _: None)
    assert not (tmp_path / "data" / "stage.json").exists()
    run_stage(ctx, "data", lambda c: {}, log=lambda _: None)
    assert not (tmp_path / "data" / "partial").exists()


def test_pairs_use_the_app_prompts_and_the_solver_stops() -> None:
    rec = Trajectory(
        "p1", "Write f(x) returning 2x.", "Multiply by two. Return it.", "def f(x):\n    return 2 * x\n"
    )
    p2t, t2s = build_pairs([rec], "completion")
    assert p2t.prompt == app_prompts.thought_prompt(rec.problem, "completion").text
    assert p2t.prompt.rstrip("\n").endswith("1.") and p2t.target == " Multiply by two.\n2. Return it.\n\n"
    assert (
        "\n\n" in app_prompts.thought_prompt(rec.problem, "completion").stops
    )  # the solver cuts the plan there
    plan = "1. Multiply by two.\n2. Return it."
    assert t2s.prompt == app_prompts.solution_prompt(rec.problem, plan, "completion").text
    assert t2s.target == "def f(x):\n    return 2 * x\n```"
    assert numbered_plan("1. a\n2. b") == "1. a\n2. b"


def test_stub_problems_train_the_body_only() -> None:
    stub = 'def double(x):\n    """Return 2x."""\n'
    rec = Trajectory("p2", stub, "Multiply.", stub + "    return 2 * x\n")
    _, t2s = build_pairs([rec], "completion")
    assert t2s.prompt.endswith(stub) and t2s.target == "    return 2 * x\n```"
    other = Trajectory(
        "p3", stub, "Multiply.", "def double(y):\n    return y + y\n"
    )  # does not continue the stub
    assert [p.kind for p in build_pairs([other], "completion")] == ["p2t"]


def test_loss_is_on_answer_tokens_only(tiny_llama) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_llama.hf_dir)
    rec = Trajectory("p1", "Write f(x) returning 2x.", "Multiply.", "def f(x):\n    return 2 * x\n")
    pairs = build_pairs([rec], "completion")
    ex = encode(tok, pairs, max_len=4096, style="completion")
    for e, pair in zip(ex, pairs, strict=True):
        answer = [t for t, lab in zip(e.input_ids, e.labels, strict=True) if lab != -100]
        assert tok.decode(answer, skip_special_tokens=True).strip() == pair.target.strip()
        assert e.labels[0] == -100
    short = encode(tok, pairs, max_len=64, style="completion")
    assert all(len(e.input_ids) == 64 for e in short)  # truncated from the left, answer kept
    assert all(lab != -100 for lab in short[1].labels[-5:])


def test_tail_only_loss_equals_the_models_own_loss(tiny_llama) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trainer.data import synthetic
    from trainer.modeling import answer_loss, collate

    tok = AutoTokenizer.from_pretrained(tiny_llama.hf_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama.hf_dir)
    ex = encode(tok, build_pairs(synthetic(3, 0), "completion"), max_len=300, style="completion")
    batch = collate(ex, int(tok.pad_token_id), "cpu")  # rows of different lengths: right padding
    with torch.no_grad():
        assert answer_loss(model, batch).item() == pytest.approx(model(**batch).loss.item(), rel=1e-5)


def test_long_answers_keep_prompt_context_and_loss_handles_answer_at_position_zero(tiny_llama) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trainer.modeling import answer_loss

    tok = AutoTokenizer.from_pretrained(tiny_llama.hf_dir)
    rec = Trajectory("p", "Write f.", "Do it.", "def f():\n" + "    x = 1\n" * 60 + "    return x\n")
    ex = encode(tok, build_pairs([rec], "completion"), max_len=128, style="completion")[1]
    assert len(ex.input_ids) == 128
    assert ex.labels[:64] == (-100,) * 64 and all(
        lab != -100 for lab in ex.labels[64:]
    )  # half prompt, half answer
    model = AutoModelForCausalLM.from_pretrained(tiny_llama.hf_dir)
    ids = torch.tensor([ex.input_ids])
    batch = {
        "input_ids": ids,
        "labels": ids.clone(),
        "attention_mask": torch.ones_like(ids),
    }  # every token a label
    with torch.no_grad():
        assert answer_loss(model, batch).item() == pytest.approx(model(**batch).loss.item(), rel=1e-5)
