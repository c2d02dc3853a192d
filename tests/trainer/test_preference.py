"""Preference training (``sft.objective = "dpo"``): which pairs are made, the DPO loss on a tiny real model, the
data stage's handling of ``data.negatives``, and the sft stage end to end with preference pairs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bdc_assistant.errors import ConfigError, DatasetError
from bdc_assistant.evaluation.splits import validation_ids
from trainer.config import load_config
from trainer.data import Trajectory, rejected_programs, synthetic
from trainer.preference import dpo_loss, encode_preferences, preference_pairs

STUB = "def add(a, b):\n    '''\n    Add two numbers.\n    assert add(1, 2) == 3\n    '''\n"


def rec(pid: str, solution: str, *, verified: bool | None = True, problem: str = STUB) -> Trajectory:
    return Trajectory(pid, problem, "", solution, 1.0 if verified else 0.0, "test", None, verified)


GOOD = "def add(a, b):\n    return a + b\n"
GOOD2 = "def add(a, b):\n    return sum((a, b))\n"
BAD = "def add(a, b):\n    return 3\n"
BAD2 = "def add(a, b):\n    return a - b\n"
VALID_ID = sorted(validation_ids("mbpp"))[0]  # a validation problem: never trained on


def test_pairs_only_for_problems_with_a_failing_program_each_side_used_at_least_once() -> None:
    records = [rec("p/1", GOOD), rec("p/1", GOOD2), rec("p/2", GOOD)]
    negatives = [rec("p/1", BAD, verified=False), rec("p/3", BAD, verified=False)]
    prefs = preference_pairs(records, negatives, "chat", ["p2s"])
    assert len(prefs) == 2  # p/1: two verified programs over its one failing one; p/2 and p/3 have no pair
    assert {p.chosen.record for p in prefs} == {0, 1} and all(
        p.rejected.record == p.chosen.record for p in prefs
    )
    for p in prefs:
        assert p.chosen.prompt == p.rejected.prompt  # the same prompt: only the program differs
        assert "return 3" in p.rejected.target and "return 3" not in p.chosen.target
        assert p.rejected.target.startswith("```python\n") and p.chosen.target.startswith("```python\n")
    more = preference_pairs(
        [rec("p/1", GOOD)],
        [rec("p/1", BAD, verified=False), rec("p/1", BAD2, verified=False)],
        "chat",
        ["p2s"],
    )
    assert [("return 3" in p.rejected.target, "a - b" in p.rejected.target) for p in more] == [
        (True, False),
        (False, True),
    ]


def test_a_failing_program_is_shaped_with_the_chosen_records_text() -> None:
    """A negative recorded with other problem text still answers the verified record's prompt."""
    other = rec("p/1", BAD, verified=False, problem="Add a and b.")
    (pref,) = preference_pairs([rec("p/1", GOOD)], [other], "chat", ["p2s"])
    assert pref.rejected.prompt == pref.chosen.prompt and pref.rejected.problem == STUB


def test_a_failing_program_equal_to_a_verified_one_is_no_pair() -> None:
    assert preference_pairs([rec("p/1", GOOD)], [rec("p/1", GOOD, verified=False)], "chat", ["p2s"]) == []


def test_rejected_programs_refuses_a_verified_line_and_holds_out_validation(tmp_path: Path) -> None:
    f = tmp_path / "neg.jsonl"
    lines = [
        rec("p/1", BAD, verified=False),
        rec(VALID_ID, BAD, verified=False),  # a validation problem (mbpp-val): never used
        rec("p/9", BAD, verified=False),  # no verified program: nothing to pair with
        rec("p/1", BAD, verified=False),  # a duplicate
    ]
    f.write_text("".join(json.dumps(x.as_dict()) + "\n" for x in lines))
    kept = [rec("p/1", GOOD), rec(VALID_ID, GOOD)]
    out = rejected_programs([f], kept, max_chars=6000, holdout_validation=True)
    assert [(r.problem_id, r.solution) for r in out] == [("p/1", BAD)]
    f.write_text(json.dumps(rec("p/1", GOOD).as_dict()) + "\n")
    with pytest.raises(DatasetError, match="line 1 is not marked as failing"):
        rejected_programs([f], kept, max_chars=6000, holdout_validation=True)


def test_dpo_config_is_checked_and_new_knobs_at_default_keep_old_stage_keys() -> None:
    with pytest.raises(ConfigError):
        load_config(None, ["sft.objective='ppo'"])
    with pytest.raises(ConfigError):
        load_config(None, ["sft.dpo_beta=0"])
    plain = load_config(None, [])
    assert "objective" not in plain.sft.key_payload() and "negatives" not in plain.data.key_payload()
    dpo = load_config(None, ["sft.objective='dpo'"])
    assert dpo.section_hash("sft") != plain.section_hash("sft")
    assert load_config(None, ["sft.objective='sft'"]).section_hash("sft") == plain.section_hash("sft")


@pytest.fixture(scope="module")
def tiny_peft(tiny_llama):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(tiny_llama.hf_dir)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(tiny_llama.hf_dir, dtype=torch.float32)
    for p in model.parameters():
        p.requires_grad_(False)
    cfg = LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    return get_peft_model(model, cfg), tok


def test_dpo_loss_starts_at_log2_and_training_prefers_the_verified_program(tiny_peft) -> None:
    import torch

    model, tok = tiny_peft
    prefs = preference_pairs(
        [rec("p/1", GOOD)], [rec("p/1", BAD, verified=False)], "completion", ["p2t", "t2s"]
    )
    examples = encode_preferences(tok, [p for p in prefs if p.chosen.kind == "t2s"], 256, "completion")
    assert examples
    pad = int(tok.pad_token_id)
    loss, stats = dpo_loss(model, examples, pad, "cpu", beta=0.5, nll_weight=0.0)
    # a fresh LoRA (B = 0) is the reference itself: margin 0, loss ln 2, no pair "won"
    assert float(loss.detach()) == pytest.approx(math.log(2), abs=1e-5) and stats["accuracy"] == 0.0
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=5e-3)
    for _ in range(15):
        opt.zero_grad()
        loss, _ = dpo_loss(model, examples, pad, "cpu", beta=0.5, nll_weight=0.0)
        loss.backward()
        opt.step()
    loss, stats = dpo_loss(model, examples, pad, "cpu", beta=0.5, nll_weight=0.0)
    assert float(loss) < math.log(2) - 0.05 and stats["accuracy"] == 1.0 and stats["margin"] > 0
    with_nll, _ = dpo_loss(model, examples, pad, "cpu", beta=0.5, nll_weight=1.0)
    assert float(with_nll) > float(loss)  # the chosen side's cross-entropy is added, not subtracted


def _negatives_for_synthetic(path: Path, n: int) -> Path:
    lines = [
        rec(
            r.problem_id, "def broken(*args):\n    return None\n", verified=False, problem=r.problem
        ).as_dict()
        | {"negative": True}
        for r in synthetic(n, 0)
    ]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def _dpo_smoke(negs: Path) -> tuple[Path, list[str]]:
    """The smoke config on the tiny model, K = 2, preference-trained against the failing programs in ``negs``."""
    smoke = Path(__file__).resolve().parents[2] / "trainer" / "configs" / "smoke.toml"
    sets = ["data.app_trajectories=false", f"data.negatives=['{negs}']", "sft.objective='dpo'", "cluster.k=2"]
    return smoke, [arg for value in sets for arg in ("--set", value)]


@pytest.mark.slow
def test_the_sft_stage_trains_every_adapter_on_preference_pairs(tmp_path: Path, tiny_llama) -> None:
    from trainer.__main__ import main

    negs = _negatives_for_synthetic(tmp_path / "neg.jsonl", 12)
    smoke, sets = _dpo_smoke(negs)
    out = tmp_path / "run"
    for stage in ("data", "cluster", "sft"):
        assert main([stage, "--config", str(smoke), *sets, "--out", str(out)]) == 0
    data = json.loads((out / "data" / "stage.json").read_text())["metrics"]
    assert data["rejected_programs"] == 12 and data["rejected_problems"]["train"] >= 2
    assert data["negative_files"] == [str(negs)]
    sft = json.loads((out / "sft" / "stage.json").read_text())["metrics"]
    assert sft["objective"] == "dpo" and set(sft["adapters"]) == {"expert_0", "expert_1", "sft_all"}
    for m in sft["adapters"].values():
        assert m["objective"] == "dpo" and m["loss_first"] == pytest.approx(math.log(2), abs=1e-4)
        assert m["preference_val"]["pairs"] == sft["val_preference_pairs"] >= 1
    assert (out / "sft" / "expert_0" / "adapter_model.safetensors").exists()


def test_dpo_without_any_failing_program_is_one_sentence(tmp_path: Path) -> None:
    from trainer.__main__ import main

    negs = tmp_path / "neg.jsonl"
    negs.write_text(json.dumps(rec("elsewhere/1", BAD, verified=False).as_dict()) + "\n")
    smoke, sets = _dpo_smoke(negs)
    out = tmp_path / "run"
    assert main(["data", "--config", str(smoke), *sets, "--out", str(out)]) == 0
    assert main(["cluster", "--config", str(smoke), *sets, "--out", str(out)]) == 0
    assert main(["sft", "--config", str(smoke), *sets, "--out", str(out)]) == DatasetError.exit_code
    assert not (out / "sft" / "stage.json").exists()
