"""On-policy selection: per problem, the verified programs the base finds likeliest (trainer/likeliest.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bdc_assistant.errors import ConfigError
from trainer import likeliest
from trainer.data import Trajectory, parse_record

SMOKE = Path(__file__).resolve().parents[2] / "trainer" / "configs" / "smoke.toml"


def _traj(pid: str, solution: str) -> Trajectory:
    return Trajectory(problem_id=pid, problem=f"Write {pid}.", thought="", solution=solution, verified=True)


def test_the_lowest_scores_of_each_problem_are_kept_in_input_order() -> None:
    recs = [
        _traj("a", "1"),
        _traj("b", "2"),
        _traj("a", "3"),
        _traj("a", "4"),
        _traj("b", "5"),
        _traj("c", "6"),
    ]
    scores = [0.9, 0.2, 0.1, 0.5, 0.2, None]  # b ties: the earlier line wins; c has nothing to train on
    assert likeliest.likeliest(recs, scores, 1) == [1, 2]
    assert likeliest.likeliest(recs, scores, 2) == [1, 2, 3, 4]
    assert likeliest.likeliest(recs, scores, 9) == [0, 1, 2, 3, 4]
    with pytest.raises(ConfigError, match="per-problem"):
        likeliest.likeliest(recs, scores, 0)


def test_a_run_keeps_per_problem_the_program_the_base_scores_lowest(tmp_path: Path) -> None:
    """End to end on the tiny random base: the kept line of each problem is the argmin of the base's CE."""
    from trainer.config import load_config

    programs = {
        "MbppEval/2": [
            "def f(x):\n    return x + 1\n",
            "def f(x):\n    y = x\n    y = y + 1\n    return y\n",
        ],
        "MbppEval/3": ["def g(s):\n    return s[::-1]\n", "def g(s):\n    return ''.join(reversed(s))\n"],
    }
    src = tmp_path / "in.jsonl"
    lines = [
        {
            "problem_id": pid,
            "problem": f"Write {pid}.",
            "thought": "",
            "solution": code,
            "public_pass_rate": 1.0,
            "source": "rejection-sampling:mbpp-train:t0.8:s0",
            "policy": "local:x",
            "verified": True,
        }
        for pid, codes in programs.items()
        for code in codes
    ]
    src.write_text("".join(json.dumps(x) + "\n" for x in lines))
    sets = [f"data.inputs={json.dumps([str(src)])}", "data.synthetic=0", "data.app_trajectories=false"]
    out = tmp_path / "kept.jsonl"

    summary = likeliest.run(SMOKE, sets, 1, out)

    kept = [json.loads(x) for x in out.read_text().splitlines()]
    assert [k["problem_id"] for k in kept] == ["MbppEval/2", "MbppEval/3"]
    assert summary["candidates"] == 4 and summary["kept"] == 2 and summary["problems"] == 2
    cfg = load_config(SMOKE, sets)
    recs = [parse_record(x, "test") for x in lines]
    scores = likeliest.score(recs, cfg, tmp_path / "scratch")
    for k in kept:
        mine = [s for r, s in zip(recs, scores, strict=True) if r.problem_id == k["problem_id"]]
        assert k["base_ce"] == pytest.approx(min(s for s in mine if s is not None), abs=1e-4)
        assert len({round(s or 0, 6) for s in mine}) == 2  # the two programs score differently: a real choice
    assert json.loads((tmp_path / "kept.jsonl.summary.json").read_text())["kept"] == 2


def test_bad_per_problem_is_one_sentence(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        likeliest.main(["--config", str(SMOKE), "--per-problem", "0", "--out", str(tmp_path / "x.jsonl")])
        == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "per-problem" in err
    assert not (tmp_path / "x.jsonl").exists()
