"""kill -9 during a search, then `bdc runs resume`: no finished node lost or duplicated, and the result
equals an uninterrupted run with the same cache."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .httpfakes import FakeLLMServer, Script, grower_responder

ROOT = Path(__file__).resolve().parents[2]
STATEMENT = "Read two integers a and b from one line and print a+b.\n\nExamples\nInput\n1 2\nOutput\n3\n"


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    return env | {
        "BDC_HOME": str(home),
        "PYTHONPATH": str(ROOT),
        "BDC_DEEP__ROLLOUTS": "9",
        "BDC_DEEP__REFINE_GLOBAL_LIMIT": "3",
        "BDC_DEEP__WIDTH": "2",
    }


def _checkpoint_rollout(db: Path) -> int:
    if not db.exists():
        return -1
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        row = con.execute("SELECT MAX(checkpoint_rollout) FROM deep_runs").fetchone()
        con.close()
        return -1 if row is None or row[0] is None else int(row[0])
    except sqlite3.Error:
        return -1


@pytest.mark.slow
def test_kill_9_then_resume_equals_uninterrupted(bdc_home: Path, tmp_path: Path) -> None:
    tests_file = tmp_path / "t.json"
    tests_file.write_text(json.dumps([{"input": "6 7\n", "output": "13\n"}]))
    db = bdc_home / "data" / "bdc.sqlite3"
    with FakeLLMServer(Script(grower_responder, delay_s=0.06)) as srv:
        args = [
            sys.executable,
            "-m",
            "bdc_assistant",
            "deep",
            STATEMENT,
            "--tests",
            str(tests_file),
            "--agent",
            f"openai:{srv.url}:model-a",
            "--agent",
            f"openai:{srv.url}:model-b",
            "--max-calls",
            "300",
            "--yes",
            "--json",
        ]
        proc = subprocess.Popen(
            args, env=_env(bdc_home), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        deadline = time.time() + 60
        while _checkpoint_rollout(db) < 3 and proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, "the run finished before it could be killed"
        time.sleep(0.1)  # land somewhere inside the next rollout
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        con = sqlite3.connect(db)
        run_id, status, killed_at = con.execute(
            "SELECT run_id, status, checkpoint_rollout FROM deep_runs"
        ).fetchone()
        assert status == "running" and 3 <= killed_at < 9
        con.close()

        res = subprocess.run(
            [sys.executable, "-m", "bdc_assistant", "runs", "resume", run_id, "--json"],
            env=_env(bdc_home),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert res.returncode == 0, res.stderr
        resumed = json.loads(res.stdout.strip().splitlines()[-1])
        assert "(resumed)" in res.stderr
        requests_after_resume = len(srv.script.requests)

        again = subprocess.run(
            args, env=_env(bdc_home), cwd=ROOT, capture_output=True, text=True, timeout=120
        )
        assert again.returncode == 0, again.stderr
        fresh = json.loads(again.stdout.strip().splitlines()[-1])
        assert len(srv.script.requests) == requests_after_resume  # replayed entirely from the cache

    assert resumed["run_id"] == run_id and fresh["run_id"] != run_id
    assert {k: v for k, v in resumed.items() if k != "run_id"} == {
        k: v for k, v in fresh.items() if k != "run_id"
    }
    assert resumed["stopped_by"] == "rollouts" and resumed["pruned"] >= 1 and resumed["refined"] >= 1

    con = sqlite3.connect(db)
    trees = dict(con.execute("SELECT run_id, checkpoint_json FROM deep_runs").fetchall())
    assert json.loads(trees[run_id]) == json.loads(trees[fresh["run_id"]])
    for rid in (run_id, fresh["run_id"]):
        ids = [
            r[0]
            for r in con.execute("SELECT node_id FROM deep_nodes WHERE run_id = ? ORDER BY node_id", (rid,))
        ]
        assert ids == list(range(resumed["nodes"]))
        added = [
            r[0]
            for r in con.execute(
                "SELECT node_id FROM deep_events WHERE run_id = ? AND kind = 'NodeAdded'", (rid,)
            )
        ]
        assert sorted(added) == ids  # every node logged exactly once
        rollouts = [
            r[0]
            for r in con.execute(
                "SELECT rollout FROM deep_events WHERE run_id = ? AND kind = 'RolloutDone' ORDER BY seq",
                (rid,),
            )
        ]
        assert rollouts == list(range(1, 10))
        seqs = [
            r[0] for r in con.execute("SELECT seq FROM deep_events WHERE run_id = ? ORDER BY seq", (rid,))
        ]
        assert seqs == list(range(len(seqs)))
