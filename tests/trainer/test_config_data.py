"""Trainer config parsing and the data stage's pure parts (schema, dedupe, split, bootstrap)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bdc_assistant.errors import ConfigError, DatasetError
from trainer import data
from trainer.config import load_config

CONFIGS = Path(__file__).resolve().parents[2] / "trainer" / "configs"


@pytest.mark.parametrize("name", ["smoke", "cpu", "gpu"], ids=["smoke_toml", "cpu_toml", "cuda_toml"])
def test_shipped_configs_parse(name: str) -> None:
    cfg = load_config(CONFIGS / f"{name}.toml")
    assert cfg.lora.r >= 1
    assert set(cfg.lora.target_modules) == {
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    }
    assert "[lora]" in cfg.to_toml()


def test_overrides_are_typed_and_checked() -> None:
    cfg = load_config(CONFIGS / "smoke.toml", ["sft.lr=0.5", "evaluate.datasets=['mbpp']", "run.name=x y"])
    assert cfg.sft.lr == 0.5 and cfg.evaluate.datasets == ["mbpp"] and cfg.run.name == "x y"
    with pytest.raises(ConfigError, match=r"sft\.nope"):
        load_config(None, ["sft.nope=1"])
    with pytest.raises(ConfigError, match=r"section\.key"):
        load_config(None, ["lr=1"])
    with pytest.raises(ConfigError, match=r"lora\.r"):
        load_config(None, ["lora.r=0"])


def test_section_hash_tracks_only_named_sections() -> None:
    a = load_config(None)
    b = load_config(None, ["sft.lr=0.1"])
    assert a.section_hash("cluster") == b.section_hash("cluster")
    assert a.section_hash("sft") != b.section_hash("sft")


def _rec(pid: str, problem: str, sol: str = "print(1)", thought: str = "t") -> dict:
    return {
        "problem_id": pid,
        "problem": problem,
        "thought": thought,
        "solution": sol,
        "public_pass_rate": 1.0,
        "source": "test",
        "policy": None,
    }


def test_jsonl_schema_errors_name_the_line(tmp_path: Path) -> None:
    f = tmp_path / "t.jsonl"
    f.write_text(json.dumps(_rec("a", "p")) + "\n" + json.dumps({"problem": "x"}) + "\n")
    with pytest.raises(DatasetError, match=r"t.jsonl:2.*thought"):
        list(data.read_jsonl(f))
    f.write_text("{not json\n")
    with pytest.raises(DatasetError, match=r"t.jsonl:1 is not valid JSON"):
        list(data.read_jsonl(f))


def test_dedupe_is_whitespace_insensitive_and_split_is_by_problem(tmp_path: Path) -> None:
    rows = [_rec(f"p{i % 5}", f"problem {i % 5}", sol=f"print({i})") for i in range(20)]
    rows.append(_rec("p0", "problem   0", sol="print(0)"))  # duplicate of row 0 up to whitespace
    f = tmp_path / "t.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    train, val, rep = data.build(
        [f],
        synthetic_n=0,
        bootstrap_sets=[],
        bootstrap_dir="",
        bootstrap_limit=0,
        val_fraction=0.4,
        max_chars=10_000,
        min_public_pass_rate=0.0,
        seed=3,
    )
    assert rep.duplicates == 1 and rep.read == 21
    assert {r.group() for r in train}.isdisjoint({r.group() for r in val})  # no problem leaks
    assert rep.validation_problems == 2 and rep.train_problems == 3
    again = data.build(
        [f],
        synthetic_n=0,
        bootstrap_sets=[],
        bootstrap_dir="",
        bootstrap_limit=0,
        val_fraction=0.4,
        max_chars=10_000,
        min_public_pass_rate=0.0,
        seed=3,
    )[2]
    assert again.data_hash == rep.data_hash


def test_filters_and_too_little_data(tmp_path: Path) -> None:
    f = tmp_path / "t.jsonl"
    bad = _rec("a", "p")
    bad["public_pass_rate"] = 0.2
    f.write_text(json.dumps(bad) + "\n" + json.dumps(_rec("b", "q")) + "\n")
    with pytest.raises(DatasetError, match="at least 2"):
        data.build(
            [f],
            synthetic_n=0,
            bootstrap_sets=[],
            bootstrap_dir="",
            bootstrap_limit=0,
            val_fraction=0.2,
            max_chars=10_000,
            min_public_pass_rate=0.5,
            seed=0,
        )


def test_bootstrap_from_shared_problem_sets_is_marked() -> None:
    recs = data.bootstrap(["mbpp", "codecontests"], "", 5)
    assert len(recs) == 10
    assert all(r.source.startswith("bootstrap:") and r.policy == "reference+rule-thought" for r in recs)
    assert all(r.thought and r.solution for r in recs)


def test_heuristic_thought_reflects_the_code() -> None:
    t = data.heuristic_thought("n=int(input())\nxs=sorted(map(int,input().split()))\nprint(xs[0])\n")
    assert "Read the input" in t and "Sort" in t and "Print" in t
    assert "Return" in data.heuristic_thought("def f(x):\n    return x * 2\n")


def test_expand_inputs_missing_path(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        data.expand_inputs([tmp_path / "nope.jsonl"])
    (tmp_path / "b.jsonl").write_text("")
    (tmp_path / "a.jsonl").write_text("")
    assert [p.name for p in data.expand_inputs([tmp_path])] == ["a.jsonl", "b.jsonl"]


def test_a_relative_input_is_found_from_any_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """cpu.toml names the committed dataset relative to the repository: it must not depend on the cwd."""
    monkeypatch.chdir(tmp_path)
    (found,) = data.expand_inputs(["trainer/datasets"])[:1]
    assert found.is_file() and found.parent == data.REPO_ROOT / "trainer" / "datasets"
    with pytest.raises(DatasetError, match="does not exist"):
        data.expand_inputs(["trainer/datasets/nope.jsonl"])


def test_shared_data_dir_follows_bdc_shared_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BDC_SHARED_DATA", str(tmp_path / "elsewhere"))
    with pytest.raises(
        DatasetError, match=r"not found in .*elsewhere; set data\.bootstrap_dir or BDC_SHARED_DATA"
    ):
        data.bootstrap(["mbpp"], "", 1)
    (tmp_path / "elsewhere").mkdir()
    row = {
        "task_id": "MbppEval/7",
        "prompt": 'def add(a, b):\n    """Add two numbers."""\n',
        "entry_point": "add",
        "canonical_solution": "    return a + b\n",
        "test": "def check(candidate):\n    assert add(1, 2) == 3\n",
    }
    (tmp_path / "elsewhere" / "mbpp_sanitized_train_val.jsonl").write_text(json.dumps(row) + "\n")
    recs = data.bootstrap(["mbpp"], "", 0)
    assert [r.solution for r in recs] == [row["prompt"] + row["canonical_solution"]]
    assert recs[0].problem_id == "MbppEval/7" and recs[0].source == "bootstrap:mbpp-reference"
    # the problem is what the app's solver is shown: the stub with its public example in the docstring
    assert (
        "Your code should pass this test:" in recs[0].problem and "assert add(1, 2) == 3" in recs[0].problem
    )
    del row["entry_point"]
    (tmp_path / "elsewhere" / "mbpp_sanitized_train_val.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(DatasetError, match="lacks the field 'entry_point'"):
        data.bootstrap(["mbpp"], "", 0)


def test_evaluate_threads_reach_the_app_backend_but_not_the_answer_cache(tmp_path: Path) -> None:
    from trainer import evaluate
    from trainer.modeling import BaseRef
    from trainer.runner import Context

    ref = BaseRef("hf", "model.gguf", {}, "completion")

    def ctx_with(threads: int) -> Context:
        ctx = Context(load_config(None, [f"evaluate.threads={threads}"]), tmp_path)
        for stage in ("hypernet", "baselines"):
            (tmp_path / stage).mkdir(exist_ok=True)
            (tmp_path / stage / "stage.json").write_text(json.dumps({"key": stage * 3}))
        return ctx

    assert evaluate.app_settings(ctx_with(1), ref).backend.threads == 1
    assert evaluate.app_settings(ctx_with(0), ref).backend.threads == 0
    assert evaluate.eval_runs_dir(ctx_with(1), ref) == evaluate.eval_runs_dir(ctx_with(3), ref)


def test_a_problem_set_row_without_a_field_is_one_sentence(tmp_path: Path) -> None:
    (tmp_path / "mbpp_sanitized_train_val.jsonl").write_text(
        json.dumps({"task_id": "x", "prompt": "p", "entry_point": "f"}) + "\n"
    )
    with pytest.raises(DatasetError, match=r"A row of the 'mbpp' problem set in .* lacks the field 'test'"):
        data.bootstrap(["mbpp"], str(tmp_path), 0)


def test_evaluate_repair_rounds_reach_the_solver_and_key_the_cache_only_when_on(tmp_path: Path) -> None:
    """Table 2 scores first answers unless asked (repair off keeps the key answers were cached under)."""
    import hashlib

    from trainer import evaluate
    from trainer.modeling import BaseRef
    from trainer.runner import Context

    ref = BaseRef("hf", "model.gguf", {}, "chat")

    def ctx_with(*overrides: str) -> Context:
        return Context(load_config(None, list(overrides)), tmp_path)

    assert evaluate.app_settings(ctx_with(), ref).solver.repair_rounds == 0
    assert evaluate.app_settings(ctx_with("evaluate.repair_rounds=2"), ref).solver.repair_rounds == 2
    off, on = ctx_with(), ctx_with("evaluate.repair_rounds=1")
    assert evaluate.eval_runs_dir(off, ref) != evaluate.eval_runs_dir(on, ref)
    e = off.cfg.evaluate.model_dump(mode="json")  # the key as it was computed before these settings existed
    for k in ("limit", "datasets", "methods", "threads", "repair_rounds", "temperature", "samples"):
        e.pop(k)
    key = json.dumps({"e": e, "base": ref.identity, "style": ref.prompt_style, "v": 2}, sort_keys=True)
    assert evaluate.eval_runs_dir(off, ref).name == hashlib.sha256(key.encode()).hexdigest()[:12]


def test_the_data_stage_counts_sources_by_kind() -> None:
    from trainer.data import source_kind

    assert source_kind("deep:20261203-113301-1684f5") == "deep"
    assert source_kind("rejection-sampling:mbpp-train:t0.8:s5") == "rejection-sampling:mbpp-train:t0.8"
    assert source_kind("selfinstruct:mbpp-train:t0.8:s3") == "selfinstruct:mbpp-train:t0.8"
    assert source_kind("bootstrap:mbpp-reference") == "bootstrap:mbpp-reference"
    assert source_kind("") == "unknown"


def test_the_data_stage_manifest_says_who_wrote_the_programs(tmp_path: Path) -> None:
    """Two samplers at one temperature share a source kind; the manifest still tells their programs apart."""
    from trainer.runner import Context

    def line(pid: str, seed: int, policy: str) -> str:
        rec = _rec(pid, f"problem {pid} " * 3, sol=f"def f():\n    return {seed}\n")
        return json.dumps(rec | {"source": f"rejection-sampling:mbpp-train:t0.8:s{seed}", "policy": policy})

    small = tmp_path / "small.jsonl"
    big = tmp_path / "big.jsonl"
    small.write_text("\n".join(line(f"p{i}", i, "local:small.gguf") for i in range(6)) + "\n")
    big.write_text("\n".join(line(f"q{i}", i, "local:big.gguf") for i in range(4)) + "\n")
    cfg = load_config(
        None,
        [
            f"data.inputs={json.dumps([str(small), str(big)])}",
            "data.holdout_validation=false",
            "data.val_fraction=0.0",
        ],
    )
    got = data.stage_data(Context(cfg, tmp_path / "run"))
    assert got["sources"] == {"rejection-sampling:mbpp-train:t0.8": 10}
    assert got["policies"] == {"local:small.gguf": 6, "local:big.gguf": 4}
    assert list(got["policies"]) == ["local:small.gguf", "local:big.gguf"]  # most frequent first


def test_sampled_evaluation_seeds_each_sample_and_keeps_greedy_caches(tmp_path: Path) -> None:
    """samples > 1 needs a temperature; each sample decodes with its own seed; greedy keeps its cache key."""
    from trainer import evaluate
    from trainer.modeling import BaseRef
    from trainer.runner import Context

    ref = BaseRef("hf", "model.gguf", {}, "chat")

    def ctx_with(*overrides: str) -> Context:
        return Context(load_config(None, list(overrides)), tmp_path)

    with pytest.raises(ConfigError, match=r"evaluate\.samples above 1 needs evaluate\.temperature above 0"):
        load_config(None, ["evaluate.samples=4"])
    sampled = ctx_with("evaluate.samples=4", "evaluate.temperature=0.2", "run.seed=7")
    s2 = evaluate.app_settings(sampled, ref, 2)
    assert (s2.solver.temperature, s2.backend.seed) == (0.2, 2)  # not run.seed: it is not in the cache key
    greedy = evaluate.app_settings(ctx_with(), ref)
    assert (greedy.solver.temperature, greedy.backend.seed) == (0.0, 0)
    # the number of samples is not in the key (one directory per sample), the temperature is when not 0
    assert evaluate.eval_runs_dir(sampled, ref) == evaluate.eval_runs_dir(
        ctx_with("evaluate.samples=2", "evaluate.temperature=0.2", "run.seed=7"), ref
    )
    assert evaluate.eval_runs_dir(sampled, ref) != evaluate.eval_runs_dir(ctx_with("run.seed=7"), ref)
