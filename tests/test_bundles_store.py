"""New-trajectory counting reads the deep-mode store; `sync_store_trajectories` exports what the trainer reads."""

from __future__ import annotations

import json

import pytest

from bdc_assistant import bundles
from bdc_assistant.deep.exports import trajectories
from bdc_assistant.deep.llm import Budgets
from bdc_assistant.store.runs import RunStore
from tests.deep.conftest import ADD, make_runner
from tests.deep.httpfakes import FakeLLMServer, Script, adder_responder


@pytest.mark.network_local
def test_finished_deep_runs_count_once_and_sync_to_jsonl(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setattr(bundles, "ASSETS_DIR", tmp_path / "no-assets")
    assert bundles.count_trajectories() == 0
    assert not bundles.app_paths().db_file.exists()  # counting never creates the database
    store = RunStore()
    try:
        with FakeLLMServer(Script(adder_responder)) as srv:
            res = make_runner(store, [srv.url]).run(
                ADD,
                [f"openai:{srv.url}:model-a", f"openai:{srv.url}:model-b"],
                Budgets(max_calls=30, budget_usd=0),
            )
        n = len(trajectories(store, res.run_id))
    finally:
        store.close()
    assert n > 0
    assert bundles.count_trajectories() == n
    assert bundles.new_trajectories_since_active() == n
    written = bundles.sync_store_trajectories()
    assert len(written) == 1 and written[0].parent == bundles.trajectories_dir()
    rows = [json.loads(line) for line in written[0].read_text().splitlines()]
    assert len(rows) == n and all(r["source"] == f"deep:{res.run_id}" for r in rows)
    assert bundles.count_trajectories() == n  # exported runs are not counted twice
    assert bundles.sync_store_trajectories() == []


def test_negative_lines_do_not_count_as_new_trajectories(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setattr(bundles, "ASSETS_DIR", tmp_path / "no-assets")
    tdir = bundles.trajectories_dir()
    tdir.mkdir(parents=True)
    lines = [
        {"problem": "p", "thought": "t", "solution": "s", "verified": True},
        {"problem": "p", "thought": "t", "solution": "bad", "verified": False, "negative": True},
        {"problem": "p", "thought": "t", "solution": "old"},  # an export from before the marks
    ]
    (tdir / "r.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines) + "\n")
    assert bundles.count_trajectories() == 2
