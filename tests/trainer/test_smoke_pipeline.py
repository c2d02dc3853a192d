"""Acceptance: `python -m trainer all --config trainer/configs/smoke.toml --out DIR` runs every stage on a
tiny random model, leaves a loadable bundle that both backends answer with, skips finished stages on
rerun, and `bdc retrain` over the same output registers and activates it."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bdc_assistant import bundles

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "trainer" / "configs" / "smoke.toml"
STAGES = ("data", "cluster", "sft", "hypernet", "baselines", "evaluate", "export")


def _trainer(out: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "BDC_NO_PROGRESS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "trainer", "all", "--config", str(SMOKE), "--out", str(out), *extra],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


@pytest.mark.slow
def test_smoke_config_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bdc_assistant.config import load_settings
    from bdc_assistant.disen.bundle import load_bundle
    from bdc_assistant.solver.session import open_solver

    monkeypatch.setattr(
        bundles, "ASSETS_DIR", tmp_path / "no-assets"
    )  # a fresh install without a shipped bundle
    out = tmp_path / "run"
    proc = _trainer(out)
    assert proc.returncode == 0, proc.stderr[-3000:]

    # every stage recorded its resolved config, the data hash and its metrics
    data_hash = json.loads((out / "data" / "stage.json").read_text())["data_hash"]
    for stage in STAGES:
        rec = json.loads((out / stage / "stage.json").read_text())
        assert rec["key"] and rec["config"]["run"]["name"] == "smoke" and rec["data_hash"] == data_hash
        assert (out / stage / "config.resolved.toml").exists()
    assert (out / "cluster" / "clusters.png").read_bytes()[:4] == b"\x89PNG"
    hyper = json.loads((out / "hypernet" / "stage.json").read_text())["metrics"]
    assert hyper["only_hypernet_trained"] is True

    # the Table-2-shaped report has every row
    report = json.loads((out / "evaluate" / "report.json").read_text())
    k = json.loads((out / "cluster" / "stage.json").read_text())["metrics"]["k"]
    rows = list(report["rows"])
    assert rows[0] == "w/o tuning" and rows[1] == "SFT on all"
    assert rows[-4:] == ["TIES", "DARE", "TWIN", "DisenLoRA"]
    assert len(rows) == 6 + k
    md = (out / "evaluate" / "report.md").read_text()
    assert "| DisenLoRA |" in md and "| TWIN |" in md and "### Input-awareness" in md
    # input-awareness of the candidate and of TWIN's router, and % of oracle from the per-cluster rows
    routing = report["routing"]
    assert set(routing["bundles"]) == {"DisenLoRA", "TWIN"} and routing["problems"] >= 1
    assert routing["oracle"]["problems"] == 2 and "DisenLoRA" in routing["oracle"]
    assert routing["evaluated"]["problems"] == 2 and set(routing["evaluated"]["bundles"]) == {
        "DisenLoRA",
        "TWIN",
    }
    assert "On the 2 evaluated problems" in md
    # the report answers the question per set, with the claim's sentence (random weights: any answer)
    assert report["verdict"]["met"] in (True, False) and report["verdict"]["sets"]
    assert (
        "### Does DisenLoRA beat the base and every static row?" in md and report["verdict"]["sentence"] in md
    )
    twin = load_bundle(out / "baselines" / "twin" / "bundle")
    assert k == twin.K and twin.manifest["hypernet"]["kind"] == "twin-router"

    # a loadable bundle with provenance and metrics, registered but not active
    bdir = out / "export" / "bundle"
    b = load_bundle(bdir)
    assert b.K == k >= 2
    prov = b.manifest["provenance"]
    assert prov["data_hash"] == data_hash
    assert prov["steps"]["expert_0"]["steps"] >= 1 and prov["steps"]["hypernet"]["steps"] >= 1
    assert prov["trained_on"]["sft"]["device"] == "cpu" and prov["trained_on"]["sft"]["cores"] >= 1
    assert b.manifest["metrics"]["summary"]["n"] == 2
    assert (bdir / "adapter_template.gguf").exists()
    export = json.loads((out / "export" / "stage.json").read_text())["metrics"]
    assert export["input_aware"] is (not b.manifest["metrics"]["routing"]["input_invariant"])
    assert export["input_aware"] is True  # a *trained* bundle whose gates ignore the input fails here
    assert hyper["route_warmup"]["train_routing_accuracy"] >= 0.8
    assert [e.id for e in bundles.list_bundles()] == [export["registered_id"]]
    assert bundles.active_entry() is None

    # both backends answer with it
    base = json.loads((out / "base" / "base.json").read_text())["ref"]
    backends = ["torch"] + (["llamacpp"] if importlib.util.find_spec("llama_cpp") else [])
    for backend in backends:
        settings = load_settings(
            config_file=tmp_path / "none.toml",
            models={"base_hf_dir": base["hf_dir"], "base_gguf": base["gguf"], "chat_template": "completion"},
            backend={"name": backend},
            solver={"thought_tokens": 8, "max_tokens": 8},
        )
        solver = open_solver(settings, backend=backend, bundle=str(bdir))
        try:
            answer = solver.answer("Write a function add(a, b) that returns a + b.")
        finally:
            solver.close()
        assert answer.gates is not None and answer.gates.n_experts == k, backend
        assert answer.tokens > 0

    # rerun: every stage is skipped
    again = _trainer(out)
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stderr.count("skipped") == len(STAGES)

    # `bdc retrain` over the same output: nothing to retrain, the registered bundle becomes active
    from bdc_assistant.cli import main

    assert main(["retrain", "--force", "--config", str(SMOKE), "--out", str(out), "--json"]) == 0
    active = bundles.active_entry()
    assert active is not None and active.id == export["registered_id"]
    assert bundles.active_bundle_info()["experts"] == k
