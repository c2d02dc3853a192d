"""``trainer.sample`` (rejection sampling): only programs passing public AND private tests become lines, one per
distinct program; validation sets are refused; a rerun resumes after the finished problems."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from bdc_assistant.config import load_settings
from bdc_assistant.errors import ConfigError, DatasetError
from bdc_assistant.types import Problem, TestCase
from trainer import sample as rs

from ..deep.httpfakes import BAD, GOOD
from ..deep.scripted_sandbox import ALT, GOOD2, PROGRAMS, ScriptedSandbox

GOOD_COMMENTED = "a, b = map(int, input().split())  # read\n\nprint(a + b)\n"


@dataclass
class Answer:
    code: str
    tokens: int = 1
    seconds: float = 0.01


class SeededSolver:
    """Answers by the seed in its settings, so the test knows which sample wrote what."""

    def __init__(self, by_seed: dict[int, str]) -> None:
        self.settings = load_settings(config_file=Path("/nonexistent/bdc.toml"))
        self.by_seed = by_seed
        self.seen: list[tuple[str, int]] = []

    def answer(self, problem: str, max_tokens: int | None = None) -> Answer:
        seed = self.settings.backend.seed
        self.seen.append((problem, seed))
        return Answer(self.by_seed[seed])


def problem(pid: str = "cc/1") -> Problem:
    return Problem(
        pid,
        "add two numbers",
        public_tests=(TestCase("1 2", "3"),),
        private_tests=(TestCase("4 1", "5"), TestCase("7 8", "15")),
    )


def scripted_run(
    monkeypatch: pytest.MonkeyPatch, problems: list[Problem], by_seed: dict[int, str]
) -> SeededSolver:
    """``rs.run`` on ``problems`` with a scripted solver (answers by seed) and the scripted sandbox."""
    import bdc_assistant.deep.collect as collect_mod
    import bdc_assistant.sandbox as sandbox_mod

    solver = SeededSolver(by_seed)
    solver.generator = type("G", (), {"model_id": "scripted"})()  # type: ignore[attr-defined]
    solver.close = lambda: None  # type: ignore[attr-defined]
    monkeypatch.setattr(collect_mod, "training_problems", lambda d, limit=None: problems)
    monkeypatch.setattr(rs, "_open_solver", lambda cfg, scratch: (solver, solver.settings))
    sandbox = ScriptedSandbox()
    sandbox.close = lambda: None  # type: ignore[attr-defined]
    monkeypatch.setattr(sandbox_mod, "sandbox_from_settings", lambda s: sandbox)
    return solver


def test_program_key_ignores_formatting_comments_and_docstrings() -> None:
    assert rs.program_key(GOOD) == rs.program_key(GOOD_COMMENTED)
    doc = 'def f(x):\n    """Double it."""\n    return 2 * x\n'
    assert rs.program_key(doc) == rs.program_key("def f(x):\n    return 2*x\n")
    assert rs.program_key(GOOD) != rs.program_key(GOOD2)


def test_only_distinct_programs_passing_every_test_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(PROGRAMS, GOOD_COMMENTED, PROGRAMS[GOOD])
    # seed 0 good, 1 the same program reformatted, 2 passes the public test only, 3 wrong, 4 another good one
    solver = SeededSolver({0: GOOD, 1: GOOD_COMMENTED, 2: ALT, 3: BAD, 4: GOOD2})
    cfg = rs.SampleConfig(samples=5, temperature=0.8)
    record = rs.sample_problem(solver, ScriptedSandbox(), problem(), cfg, "local:test")
    lines = record["lines"]
    assert [x["solution"] for x in lines] == [GOOD, GOOD2]
    assert record | {"seconds": 0} == {
        "problem_id": "cc/1",
        "attempts": 5,
        "passes": 3,
        "distinct": 2,
        "seconds": 0,
        "lines": lines,
    }
    assert [s for _, s in solver.seen] == [0, 1, 2, 3, 4]
    assert all(x["verified"] is True and x["policy"] == "local:test" for x in lines)
    assert lines[1]["source"] == "rejection-sampling:mbpp-train:t0.8:s4"
    assert solver.settings.backend.seed == 0  # the solver's settings are restored


def test_negatives_keep_each_distinct_failing_program_apart_from_the_lines() -> None:
    solver = SeededSolver({0: GOOD, 1: ALT, 2: BAD, 3: ALT})  # ALT: public passes, a private test fails
    cfg = rs.SampleConfig(samples=4, temperature=0.8, negatives=True)
    record = rs.sample_problem(solver, ScriptedSandbox(), problem(), cfg, "local:test")
    assert [x["solution"] for x in record["lines"]] == [GOOD]
    neg = record["negatives"]
    assert [x["solution"] for x in neg] == [ALT, BAD]  # ALT once: the repeat is the same program
    assert all(x["verified"] is False and x["negative"] is True for x in neg)
    assert neg[0]["rejected"].startswith("it fails the private tests") and neg[0]["public_pass_rate"] == 1.0
    assert neg[1]["rejected"].startswith("it fails the public tests") and neg[1]["public_pass_rate"] == 0.0
    assert neg[0]["source"] == "rejection-sampling:mbpp-train:t0.8:s1"
    without = rs.sample_problem(
        SeededSolver({0: ALT}), ScriptedSandbox(), problem(), rs.SampleConfig(samples=1), "x"
    )
    assert "negatives" not in without  # off by default: the record is what it always was


def test_a_program_failing_a_private_test_never_becomes_a_line() -> None:
    solver = SeededSolver({0: ALT, 1: ALT})  # ALT passes "1 2" (public) and fails "4 1" (private)
    record = rs.sample_problem(solver, ScriptedSandbox(), problem(), rs.SampleConfig(samples=2), "local:test")
    assert record["lines"] == [] and record["passes"] == 0


@pytest.mark.parametrize("dataset", ["mbpp-val", "humaneval", "codecontests-val", "mbpp"])
def test_validation_and_test_sets_are_refused(dataset: str, tmp_path: Path) -> None:
    with pytest.raises(DatasetError):
        rs.run(rs.SampleConfig(dataset=dataset), tmp_path / "out.jsonl")


def test_a_rerun_skips_the_finished_problems(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    solver = scripted_run(
        monkeypatch, [problem("cc/1"), problem("cc/2"), problem("cc/3")], {0: GOOD, 1: GOOD2}
    )
    out = tmp_path / "rs.jsonl"
    # a killed run: cc/1 finished; cc/2's lines reached the output but its progress line was cut short
    done_line = {"problem_id": "cc/1", "solution": GOOD, "verified": True}
    progress = tmp_path / "rs.jsonl.progress.jsonl"
    progress.write_text(
        json.dumps({"problem_id": "cc/1", "attempts": 2, "passes": 2, "distinct": 1, "lines": [done_line]})
        + '\n{"problem_id": "cc/2", "att'
    )
    out.write_text(
        json.dumps(done_line) + "\n" + json.dumps({"problem_id": "cc/2", "solution": GOOD}) + '\n{"probl'
    )
    summary = rs.run(rs.SampleConfig(samples=2), out, lambda s: None)
    asked = [p for p, _ in solver.seen]
    assert len(asked) == 4  # cc/2 and cc/3, two samples each; cc/1 is not asked again
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    # cc/1's line from its record, cc/2 and cc/3 two each: no stale cc/2 line, no torn line
    assert [x["problem_id"] for x in lines] == ["cc/1", "cc/2", "cc/2", "cc/3", "cc/3"]
    assert [json.loads(x)["problem_id"] for x in progress.read_text().splitlines()] == [
        "cc/1",
        "cc/2",
        "cc/3",
    ]
    assert summary["sampled"] == 3 and summary["lines"] == 5 and summary["verified_problems"] == 3
    assert json.loads((tmp_path / "rs.jsonl.summary.json").read_text())["policy"] == "local:scripted"


def test_negatives_go_to_their_own_file_and_survive_a_rerun(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    solver = scripted_run(monkeypatch, [problem("cc/1"), problem("cc/2")], {0: GOOD, 1: ALT})
    out = tmp_path / "rs.jsonl"
    assert rs.main(["--samples", "2", "--negatives", "true", "--limit", "0", "--out", str(out)]) == 0
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    negs = [json.loads(x) for x in (tmp_path / "rs.negatives.jsonl").read_text().splitlines()]
    assert [x["solution"] for x in lines] == [GOOD, GOOD] and all(x["verified"] for x in lines)
    assert [x["solution"] for x in negs] == [ALT, ALT] and not any(x["verified"] for x in negs)
    summary = json.loads((tmp_path / "rs.jsonl.summary.json").read_text())
    assert summary["negatives"] == 2 and summary["config"]["negatives"] is True
    (tmp_path / "rs.negatives.jsonl").write_text("torn")  # a rerun rebuilds both files from the records
    rs.run(rs.SampleConfig(samples=2, negatives=True), out, lambda s: None)
    assert [json.loads(x) for x in (tmp_path / "rs.negatives.jsonl").read_text().splitlines()] == negs
    assert len(solver.seen) == 4  # nothing asked again


def test_a_bool_flag_reads_true_and_false_not_any_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        rs.main(["--negatives", "maybe", "--out", str(tmp_path / "o.jsonl")])
    assert "expected true or false, got 'maybe'" in capsys.readouterr().err
    assert not (tmp_path / "o.jsonl").exists()


@pytest.mark.parametrize("args", [["--samples", "0"], ["--temperature", "-1"], ["--limit", "-2"]])
def test_bad_settings_are_one_sentence(
    args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert rs.main([*args, "--out", str(tmp_path / "o.jsonl")]) == ConfigError.exit_code
    err = capsys.readouterr().err
    assert err.startswith("error: trainer.sample needs --samples >= 1") and err.count("\n") == 1
    assert not (tmp_path / "o.jsonl").exists()


@pytest.mark.parametrize("module", ["trainer.sample", "trainer.synthesize"])
def test_a_missing_model_is_one_sentence_and_writes_nothing(tmp_path, capsys, module) -> None:
    """Both data makers open the model before touching the output: a typo in --gguf leaves no empty files."""
    import importlib

    main = importlib.import_module(module).main
    out = tmp_path / "made" / "lines.jsonl"
    rc = main(["--gguf", str(tmp_path / "no-such.gguf"), "--limit", "1", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 3 and err.count("\n") == 0 and "no-such.gguf does not exist" in err
    assert not (tmp_path / "made").exists()
