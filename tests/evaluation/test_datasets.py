"""Loaders: shapes of the shipped sets, the half split, APPS layouts, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bdc_assistant.errors import DatasetError
from bdc_assistant.evaluation.datasets import load_dataset, repair_mbpp_solution


def test_humaneval_shape() -> None:
    ps = load_dataset("humaneval")
    assert len(ps) == 164
    p = ps[0]
    assert p.kind == "call" and p.entry_point == "has_close_elements"
    assert len(p.private_tests) == 1 and p.private_tests[0].input.rstrip().endswith(
        "check(has_close_elements)"
    )
    assert all(t.origin == "statement" and t.kind == "call" for t in p.public_tests)
    assert len(p.public_tests) == 2


def test_mbpp_and_codecontests_shapes() -> None:
    mbpp = load_dataset("mbpp")
    assert len(mbpp) == 170 and all(p.kind == "call" for p in mbpp)
    cc = load_dataset("codecontests", limit=5)
    assert len(cc) == 5
    assert len(cc[0].public_tests) == 5 and len(cc[0].private_tests) == 5  # first n//2 public
    assert load_dataset("codecontests", limit=0) == []


def test_shared_data_env_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    row = {"id": "x1", "statement": "s", "tests": [{"input": "1\n", "output": "1\n"}] * 3, "solution": None}
    (tmp_path / "codecontests_240.jsonl").write_text(json.dumps(row) + "\n")
    monkeypatch.setenv("BDC_SHARED_DATA", str(tmp_path))
    ps = load_dataset("codecontests")
    assert [p.id for p in ps] == ["x1"] and (len(ps[0].public_tests), len(ps[0].private_tests)) == (1, 2)


def test_deepmind_codecontests_layout(tmp_path: Path) -> None:
    row = {
        "name": "1_a",
        "description": "add",
        "public_tests": {"input": ["1 2\n"], "output": ["3\n"]},
        "private_tests": {"input": ["2 2\n", "0 0\n"], "output": ["4\n", "0\n"]},
        "solutions": {"language": [3], "solution": ["print(sum(map(int, input().split())))"]},
    }
    f = tmp_path / "cc.jsonl"
    f.write_text(json.dumps(row) + "\n")
    (p,) = load_dataset(f"codecontests:{f}")
    assert p.reference_solution and len(p.all_tests) == 3


def test_apps_dir_and_jsonl(tmp_path: Path) -> None:
    d = tmp_path / "apps" / "0001"
    d.mkdir(parents=True)
    (d / "question.txt").write_text("Add numbers")
    (d / "input_output.json").write_text(
        json.dumps({"inputs": ["1 2\n", "3 4\n"], "outputs": ["3\n", "7\n"]})
    )
    (d / "solutions.json").write_text(json.dumps(["print(sum(map(int, input().split())))"]))
    (d / "metadata.json").write_text(json.dumps({"difficulty": "interview"}))
    (p,) = load_dataset(f"apps:{tmp_path / 'apps'}")
    assert p.kind == "stdio" and p.difficulty == 1 and len(p.public_tests) == 1
    row = {
        "problem_id": 7,
        "question": "twice",
        "starter_code": "class Solution:\n",
        "input_output": json.dumps({"fn_name": "twice", "inputs": [[1], [2]], "outputs": [2, 4]}),
    }
    f = tmp_path / "apps.jsonl"
    f.write_text(json.dumps(row) + "\n")
    (q,) = load_dataset(f"apps:{f}")
    assert q.kind == "call" and q.private_tests[0].fn_name == "twice" and q.private_tests[0].input == "[2]"


@pytest.mark.parametrize("spec", ["nope", "apps", "apps:/does/not/exist", "codecontests:/nope.jsonl"])
def test_bad_specs_are_one_sentence(spec: str) -> None:
    with pytest.raises(DatasetError):
        load_dataset(spec)


def test_broken_jsonl_names_the_line(tmp_path: Path) -> None:
    f = tmp_path / "bad.jsonl"
    f.write_text('{"id": 1, "statement": "", "tests": []}\n{oops\n')
    with pytest.raises(DatasetError, match="Line 2"):
        load_dataset(f"codecontests:{f}")


def test_mbpp_repair_handles_tabs_and_helpers() -> None:
    prompt = "def even_ele(t, f): \n    '''\n    doc\n    '''\n"
    body = "\tres = tuple() \n\tfor e in t: \n\t\tres += (e,) \n\treturn res \ndef helper(t):\n  return even_ele(t, 1)\n"
    fixed = repair_mbpp_solution(prompt, body)
    compile(fixed, "x", "exec")
    assert "def helper(t):" in fixed
