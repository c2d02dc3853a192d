"""`bdc retrain`: the threshold, the lock, the not-worse rule, and a failed run leaving the active bundle alone."""

from __future__ import annotations

import fcntl
import json
from pathlib import Path

import pytest

from bdc_assistant import bundles
from bdc_assistant.cli import main
from bdc_assistant.commands.retrain import should_switch, trainer_command
from bdc_assistant.paths import app_paths


def _m(
    ac: float | None, pr: float = 10.0, datasets: tuple[str, ...] = ("humaneval",), backend: str = "llamacpp"
) -> dict:
    summary = None if ac is None else {"ac": ac, "pr": pr}
    return {
        "metrics": {"summary": summary, "evaluation_datasets": list(datasets), "evaluation_backend": backend}
    }


def test_not_worse_rule() -> None:
    assert should_switch(_m(5.0), None)[0]
    assert should_switch(_m(5.0), _m(None))[0]
    assert should_switch(_m(5.0, 10.0), _m(5.0, 10.0))[0]  # equal is not worse
    assert should_switch(_m(6.0, 1.0), _m(5.0, 50.0))[0]  # AC first
    assert not should_switch(_m(5.0, 9.9), _m(5.0, 10.0))[0]
    assert not should_switch(_m(4.0), _m(5.0))[0]
    assert not should_switch(_m(None), _m(1.0))[0]
    ok, why = should_switch(_m(9.0, datasets=("mbpp",)), _m(1.0))
    assert not ok and "different datasets" in why
    assert not should_switch(_m(9.0, backend="torch"), _m(1.0))[0]


def _with_vs_base(manifest: dict, solved: int, base_solved: int, ci: tuple[float, float]) -> dict:
    vs = {"ac_diff": (solved - base_solved) * 100 / 60, "ci95": list(ci), "solved": solved}
    vs |= {"base_solved": base_solved, "n": 60}
    manifest["metrics"]["evaluation"] = {"rows": {"DisenLoRA": {"overall": {"vs_base": vs}}}}
    return manifest


def test_a_bundle_worse_than_the_plain_base_on_validation_never_switches() -> None:
    worse = _with_vs_base(_m(40.0, datasets=("mbpp-val",)), 24, 27, (-11.7, 1.7))
    ok, why = should_switch(worse, None)  # even with nothing active
    assert not ok
    assert (
        why == "it is worse than the plain base: 24 of 60 validation problems against the plain base's 27, "
        "-5.0 points, 95 % CI [-11.7, +1.7]"
    )
    better = _with_vs_base(_m(50.0, datasets=("mbpp-val",)), 30, 27, (-3.3, 13.3))
    ok, why = should_switch(better, _m(45.0, datasets=("mbpp-val",)))
    assert ok and why.endswith(
        "30 of 60 validation problems against the plain base's 27, +5.0 points, 95 % CI [-3.3, +13.3]"
    )


def test_trainer_runs_as_a_subprocess_without_activating() -> None:
    cmd = trainer_command(Path("c.toml"), Path("/o"), ["sft.lr=1"])
    assert cmd[1:4] == ["-m", "trainer", "all"]
    assert "export.activate=false" in cmd and "data.app_trajectories=true" in cmd and cmd[-1] == "sft.lr=1"
    assert "data.min_public_pass_rate=1.0" in cmd  # only programs that pass every public test train


@pytest.fixture()
def no_shipped(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(bundles, "ASSETS_DIR", tmp_path / "no-assets")


def _trajectories(n: int) -> None:
    d = bundles.trajectories_dir()
    d.mkdir(parents=True, exist_ok=True)
    with (d / "t.jsonl").open("a") as fh:
        for i in range(n):
            fh.write(
                json.dumps({"problem_id": f"p{i}", "problem": "x", "thought": "y", "solution": "z"}) + "\n"
            )


def test_too_few_new_trajectories_does_nothing(no_shipped: None, capsys: pytest.CaptureFixture) -> None:
    _trajectories(3)
    assert main(["retrain", "--min-new", "4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ran"] is False and out["new_trajectories"] == 3
    assert not (app_paths().state_dir / "retrain").exists()
    assert main(["retrain", "--min-new", "3", "--dry-run"]) == 0
    assert "would run" in capsys.readouterr().out


def test_second_run_is_refused_by_the_lock(no_shipped: None, capsys: pytest.CaptureFixture) -> None:
    state = app_paths().state_dir
    state.mkdir(parents=True, exist_ok=True)
    with (state / "retrain.lock").open("a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert main(["retrain", "--force"]) == 75
        assert "Another `bdc retrain` is running" in capsys.readouterr().err


def test_failed_run_leaves_the_active_bundle_untouched(
    no_shipped: None, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from bdc_assistant.disen.random_bundle import make_random_bundle
    from bdc_assistant.models.tiny import build_tiny

    tiny = build_tiny("llama", tmp_path / "tiny", seed=0)
    active = bundles.register(
        make_random_bundle(tiny.hf_dir, tmp_path / "b", K=2, r=2, embed_dim=8, hidden=4), activate=True
    )
    pointer = (bundles._registry() / "active.json").read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text("[sft]\nlr = -1\n")  # the trainer refuses it: exits non-zero before training
    _trajectories(5)
    assert main(["retrain", "--min-new", "1", "--config", str(bad), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["ran"] and out["trainer_exit"] == 2 and "unchanged" in out["message"]
    assert "sft.lr" in Path(out["log"]).read_text()
    assert (bundles._registry() / "active.json").read_text() == pointer
    assert bundles.active_entry().id == active.id
    assert [e.id for e in bundles.list_bundles()] == [active.id]
