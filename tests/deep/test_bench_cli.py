"""``bdc deep-bench`` as a process: SIGTERM mid-run still prints the report of the problems finished (one
interrupted evening is not lost), marked as interrupted, with exit status 130."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from .httpfakes import FakeLLMServer, Script, adder_responder

ROOT = Path(__file__).resolve().parents[2]


def _bench_process(srv: FakeLLMServer, bdc_home: Path, *extra: str) -> subprocess.Popen[str]:
    """``bdc deep-bench`` on the first HumanEval problems against the fake server, as its own process."""
    cmd = [
        sys.executable, "-m", "bdc_assistant", "deep-bench", "--dataset", "humaneval",
        "--agent", f"openai:{srv.url}:model-a", "--max-calls", "3", "--methods", "zero-shot,best-of-n",
        "--yes", "--json", *extra,
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env |= {"BDC_HOME": str(bdc_home), "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.network_local
def test_sigterm_prints_the_report_of_the_finished_problems(bdc_home: Path) -> None:
    # each request waits, so the second problem is still running when the signal comes
    with FakeLLMServer(Script(adder_responder, delay_s=0.3)) as srv:
        proc = _bench_process(srv, bdc_home, "--limit", "3")
        assert proc.stderr is not None
        seen = []
        for line in proc.stderr:
            seen.append(line)
            if line.startswith("[1/3]"):
                proc.send_signal(signal.SIGTERM)
                break
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, "".join(seen) + err
    report = json.loads(out.strip().splitlines()[-1])
    assert (report["problems"], report["interrupted"]) == (1, {"after": 1, "of": 3})
    assert report["per_problem"]["ids"] == ["HumanEval/0"]
    assert all(m["problems"] == 1 for m in report["methods"].values())
    assert "[2/3] HumanEval/1: interrupted" in err and "interrupted after 1 of 3" in err


@pytest.mark.network_local
def test_sigterm_with_problems_in_flight_stops_the_threads_and_reports_whole_problems(bdc_home: Path) -> None:
    """``--jobs 2``: the signal reaches the main thread while it waits on the workers; the problems still in
    flight are cancelled at their next call, and the report holds only the problems that finished."""
    with FakeLLMServer(Script(adder_responder, delay_s=0.3)) as srv:
        proc = _bench_process(srv, bdc_home, "--limit", "4", "--jobs", "2")
        assert proc.stderr is not None
        seen = []
        for line in proc.stderr:
            seen.append(line)
            if "done)" in line:  # the first problem finished: another one is in flight
                proc.send_signal(signal.SIGTERM)
                break
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, "".join(seen) + err
    report = json.loads(out.strip().splitlines()[-1])
    n = report["problems"]
    assert 1 <= n < 4 and report["interrupted"] == {"after": n, "of": 4} and report["jobs"] == 2
    assert len(report["per_problem"]["ids"]) == n
    assert all(m["problems"] == n for m in report["methods"].values())
    assert "interrupted; the report covers the" in err


@pytest.mark.network_local
def test_a_second_sitting_reads_every_sandbox_outcome_back(bdc_home: Path) -> None:
    """The same bench twice on one home: the second sends no request and runs no program (every response
    and every sandbox outcome is read back) and reports the same rows; ``--no-replay-outcomes`` runs the
    programs again and records nothing."""
    reports, sent = [], []
    with FakeLLMServer(Script(adder_responder)) as srv:
        for extra in ((), (), ("--no-replay-outcomes",)):
            proc = _bench_process(srv, bdc_home, "--limit", "2", *extra)
            out, err = proc.communicate(timeout=180)
            assert proc.returncode == 0, err
            reports.append(json.loads(out.strip().splitlines()[-1]))
            sent.append(len(srv.script.requests))
    first, second, plain = reports
    assert sent[0] >= 2 and sent[1] == sent[2] == sent[0]
    assert first["sandbox_outcomes"]["recorded"] >= 4  # public and private tests of two rows on two problems
    assert second["sandbox_outcomes"] == {"recalled": sum(first["sandbox_outcomes"].values()), "recorded": 0}
    assert "sandbox_outcomes" not in plain

    def rows(report: dict) -> dict:
        return {n: {k: v for k, v in m.items() if "wall" not in k} for n, m in report["methods"].items()}

    assert rows(first) == rows(second) == rows(plain)
    assert first["per_problem"] == second["per_problem"] == plain["per_problem"]
