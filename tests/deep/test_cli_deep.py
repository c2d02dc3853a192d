"""`bdc deep` / `bdc runs` end to end: real CLI process, real sandbox, real HTTP to a local fake server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .httpfakes import FakeLLMServer, Script, adder_responder

ROOT = Path(__file__).resolve().parents[2]
PLANTED = "sk-planted-SECRET-4242424242"
STATEMENT = "Read two integers a and b from one line and print a+b.\n\nExamples\nInput\n1 2\nOutput\n3\n"


def cli(args: list[str], home: Path, extra_env: dict[str, str] | None = None, timeout: float = 120):
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env |= {"BDC_HOME": str(home), "PYTHONPATH": str(ROOT)} | (extra_env or {})
    return subprocess.run(
        [sys.executable, "-m", "bdc_assistant", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def tests_file(tmp_path: Path) -> Path:
    f = tmp_path / "tests.json"
    f.write_text(json.dumps([{"input": "6 7\n", "output": "13\n"}]))
    return f


def test_without_consent_and_no_terminal_nothing_is_sent(bdc_home: Path, tests_file: Path) -> None:
    with FakeLLMServer(Script(adder_responder)) as srv:
        r = cli(
            ["deep", STATEMENT, "--tests", str(tests_file), "--agent", f"openai:{srv.url}:model-a", "--json"],
            bdc_home,
        )
        assert r.returncode == 8, r.stderr
        assert r.stderr.startswith("bdc: Deep mode sends") and "--yes" in r.stderr
        assert srv.script.requests == []


@pytest.mark.slow
def test_deep_json_contract_and_planted_key_never_stored(bdc_home: Path, tests_file: Path) -> None:
    def leaky(model: str, messages: list[dict[str, str]]) -> str:
        return adder_responder(model, messages) + f"\n# echoed {PLANTED}\n"

    with FakeLLMServer(Script(leaky)) as srv:
        agents = ["--agent", f"openai:{srv.url}:model-a", "--agent", f"openai:{srv.url}:model-b"]
        env = {"OPENAI_API_KEY": PLANTED}
        r = cli(
            ["deep", STATEMENT, "--tests", str(tests_file), *agents, "--max-calls", "20", "--yes", "--json"],
            bdc_home,
            env,
        )
        assert r.returncode == 0, r.stderr
        auth = [
            {k.lower(): v for k, v in req["headers"].items()}.get("authorization")
            for req in srv.script.requests
        ]
        assert f"Bearer {PLANTED}" in auth  # the key really was used
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1
    out = json.loads(lines[0])
    assert set(out) == {
        "best_code",
        "public_pass_rate",
        "nodes",
        "pruned",
        "refined",
        "calls",
        "run_id",
        "stopped_by",
    }
    assert out["public_pass_rate"] == 1.0 and out["stopped_by"] == "solved" and out["refined"] == 1
    assert out["calls"] <= 20 and "print(a + b)" in out["best_code"]
    assert "rollout 1: best public PR 1.000" in r.stderr
    exports = [
        cli(["runs", "export", out["run_id"], "--format", f], bdc_home)
        for f in ("jsonl", "rethinkmcts", "bdc")
    ]
    assert all(e.returncode == 0 for e in exports)
    listing = cli(["runs", "list"], bdc_home)
    assert out["run_id"] in listing.stdout
    # the key appears nowhere: stdout/stderr, exports, DB (+ WAL), any file under BDC_HOME
    for text in [r.stdout, r.stderr, listing.stdout, *(e.stdout for e in exports)]:
        assert PLANTED not in text
    assert "[REDACTED]" in exports[0].stdout
    for path in bdc_home.rglob("*"):
        if path.is_file():
            assert PLANTED.encode() not in path.read_bytes(), path
    rows = [json.loads(x) for x in exports[0].stdout.splitlines()]
    assert {tuple(sorted(x)) for x in rows} == {
        ("policy", "problem", "problem_id", "public_pass_rate", "solution", "source", "thought", "verified")
    }
    assert rows and all(x["verified"] and x["public_pass_rate"] == 1.0 for x in rows)  # verified pairs only
    trace = json.loads(exports[2].stdout)
    assert set(trace) == {"decision_to_chance", "chance_to_decision", "chance_features", "decision_features"}
    rmcts = json.loads(exports[1].stdout)
    assert len(rmcts["codes"]) == len(rmcts["train rewards"]) and rmcts["rethink_total_nums"] == 1


def test_bad_agent_spec_is_one_sentence(bdc_home: Path, tests_file: Path) -> None:
    r = cli(["deep", "x", "--tests", str(tests_file), "--agent", "nonsense", "--yes"], bdc_home)
    assert r.returncode == 2 and r.stderr.strip().startswith("bdc: Bad agent 'nonsense'")
    assert len(r.stderr.strip().splitlines()) == 1


def test_runs_export_unknown_run(bdc_home: Path) -> None:
    r = cli(["runs", "export", "nope", "--format", "jsonl"], bdc_home)
    assert r.returncode == 10 and "bdc runs list" in r.stderr
