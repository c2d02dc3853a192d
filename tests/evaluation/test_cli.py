"""`bdc check` and `bdc eval` end to end (eval with a scripted solver in place of the model)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bdc_assistant import cli
from bdc_assistant.types import Answer

REPO = Path(__file__).resolve().parents[2]


def _bdc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bdc_assistant", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )


def test_check_json(tmp_path: Path) -> None:
    code = tmp_path / "prog.py"
    code.write_text("a, b = map(int, input().split())\nprint(a + b)\n")
    tests = tmp_path / "tests.json"
    tests.write_text(json.dumps([{"input": "1 2\n", "output": "3\n"}, {"input": "2 2\n", "output": "5\n"}]))
    r = _bdc("check", "--code", str(code), "--tests", str(tests), "--timeout", "2", "--json")
    assert r.returncode == 1, r.stderr
    out = json.loads(r.stdout)
    assert (out["passed"], out["total"]) == (1, 2)
    assert [v["status"] for v in out["verdicts"]] == ["pass", "wrong"]
    assert {"status", "stdout", "stderr", "seconds", "detail", "exit_code"} <= set(out["verdicts"][0])


def test_check_call_forms(tmp_path: Path) -> None:
    code = tmp_path / "prog.py"
    code.write_text("def sq(x):\n    return x * x\n")
    tests = tmp_path / "tests.json"
    tests.write_text(
        json.dumps([{"call": "assert sq(3) == 9"}, {"fn_name": "sq", "input": [4], "output": 16}])
    )
    r = _bdc("check", "--code", str(code), "--tests", str(tests), "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["passed"] == 2


def test_check_bad_tests_file_is_one_sentence(tmp_path: Path) -> None:
    code = tmp_path / "prog.py"
    code.write_text("print(1)\n")
    tests = tmp_path / "tests.json"
    tests.write_text("{not json")
    r = _bdc("check", "--code", str(code), "--tests", str(tests))
    assert r.returncode != 0 and r.stderr.startswith("bdc: ") and len(r.stderr.strip().splitlines()) == 1


class _Solver:
    def __init__(self) -> None:
        self.closed = False

    def answer(self, problem: str, max_tokens: int | None = None) -> Answer:
        # a completion of the prompt (the runner prepends the prompt): right for truncate_number only
        code = "    return number % 1.0\n" if "def truncate_number" in problem else "    return 0\n"
        return Answer(
            problem=problem,
            thought="",
            solution_text=code,
            code=code,
            backend="fake",
            model="fake",
            bundle=None,
            tokens=3,
            seconds=0.1,
            tokens_per_s=30.0,
        )

    def close(self) -> None:
        self.closed = True


def test_eval_limit_and_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import bdc_assistant.solver.session as session

    opened: list[_Solver] = []

    def fake_open(settings: object, backend: str | None = None, bundle: object = None) -> _Solver:
        opened.append(_Solver())
        return opened[-1]

    monkeypatch.setattr(session, "open_solver", fake_open)
    out = tmp_path / "ev"
    assert cli.main(["eval", "--dataset", "humaneval", "--limit", "3", "--out", str(out), "--json"]) == 0
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert first["problems"] == 3 and first["strict"]["denominator"] == 3
    assert first["pass_at_1"] == pytest.approx(100 / 3, abs=0.01) and first["tokens"] == 9  # 1 of 3
    assert opened[-1].closed
    assert cli.main(["eval", "--dataset", "humaneval", "--limit", "5", "--out", str(out), "--json"]) == 0
    second = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert second["problems"] == 5 and second["tokens"] == 15
    assert len((out / "results.jsonl").read_text().splitlines()) == 5
