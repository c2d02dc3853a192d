"""Tolerant parsing of model output, agent specs and presets, tests files, the execution tracer."""

from __future__ import annotations

import json

import pytest

from bdc_assistant.deep.agents import clean_thought, extract_code, parse_tests, parse_thoughts
from bdc_assistant.deep.evaluate import SandboxEvaluator, evaluation_from
from bdc_assistant.deep.problem_tests import load_tests_file, merge_tests
from bdc_assistant.deep.providers.presets import parse_agent, unique_names
from bdc_assistant.deep.search import PublicProblem
from bdc_assistant.deep.trace import parse, render, traced_program, without_addresses
from bdc_assistant.errors import ConfigError, DatasetError
from bdc_assistant.types import Status, TestCase, Verdict


@pytest.mark.parametrize(
    "text",
    [
        '[{"thought": "a", "reasonableness": 0.7}, {"thought": "b", "reasonableness": 0.3}]',
        'Sure!\n```json\n[{"thought": "a", "reasonableness": 0.7},\n {"thought": "b", "reasonableness": 0.3},]\n```',
        "[{'thought': 'a', 'Reasonableness': '0.7'}, {'thought': 'b', 'Reasonableness': 0.3}]",
        '{"clues": [{"1 Clue of Step 1": "a", "Reasonableness": 0.7}, {"2 Clue of Step 1": "b", "Reasonableness": 0.3}]}',
    ],
)
def test_thought_lists_in_many_shapes(text: str) -> None:
    props, ok = parse_thoughts(text, 2)
    assert ok and [p.thought for p in props] == ["a", "b"] and [p.score for p in props] == [0.7, 0.3]


def test_thoughts_fall_back_to_lines_without_scores() -> None:
    props, ok = parse_thoughts("Here are ideas:\n1. sort the list\n2) use a heap\n- binary search", 2)
    assert not ok and [p.thought for p in props] == ["sort the list", "use a heap"]
    assert all(p.score is None for p in props)
    props, ok = parse_thoughts("just do it well", 3)
    assert [p.thought for p in props] == ["just do it well"]
    assert parse_thoughts("", 2) == ([], False)


def test_extract_code() -> None:
    assert extract_code("x\n```python\nprint(1)\n```\n```python\nprint(2)\n```") == "print(1)\n"
    assert extract_code("```\nprint(3)\n```") == "print(3)\n"
    assert extract_code("Here it is:\ndef f():\n    return 1") == "def f():\n    return 1\n"
    assert extract_code("```python\nprint(4)\n") == "print(4)\n"  # unterminated fence


def test_clean_thought() -> None:
    assert clean_thought('New step: "use a dict"\n\nmore text') == "use a dict"


def test_generated_tests_are_marked() -> None:
    stdio = PublicProblem("p", "s", ())
    tests = parse_tests('[{"input": "1\\n", "output": "2\\n"}]', stdio, 5)
    assert tests == [TestCase("1\n", "2\n", origin="generated")]
    call = PublicProblem("p", "s", (), kind="call", entry_point="f")
    assert parse_tests('["assert f(1) == 2", "print(3)"]', call, 5) == [
        TestCase("assert f(1) == 2", kind="call", origin="generated")
    ]


def test_agent_specs() -> None:
    a = parse_agent("openai:http://127.0.0.1:8080/v1:gemma")
    assert (a.kind, a.base_url, a.model, a.local, a.key_required) == (
        "openai",
        "http://127.0.0.1:8080/v1",
        "gemma",
        True,
        False,
    )
    assert a.price.cost(10**6, 10**6) == 0
    b = parse_agent("anthropic::claude-3-5-haiku-20241022")
    assert b.base_url == "https://api.anthropic.com" and b.key_required and b.price.input == 0.8
    c = parse_agent("openai:https://openrouter.ai/api/v1:openai/gpt-4o-mini")
    assert c.preset == "openrouter" and c.model == "openai/gpt-4o-mini"
    unknown = parse_agent("openai::some-new-model")
    assert unknown.price.input >= 10  # unknown cloud models are charged at a deliberately high price
    for bad, msg in [
        ("openai", "PROVIDER:URL:MODEL"),
        ("nope::m", "Unknown provider"),
        ("openai:x:", "names no model"),
        ("openai:ftp://h:m", "http"),
    ]:
        with pytest.raises(ConfigError, match=msg):
            parse_agent(bad)
    names = [a.name for a in unique_names([a, a, b])]
    assert names == ["openai:gemma", "openai:gemma#2", "anthropic:claude-3-5-haiku-20241022"]


def test_tests_files(tmp_path) -> None:
    f = tmp_path / "t.json"
    f.write_text(json.dumps([{"input": "1", "output": "2"}, {"assert": "assert f(1) == 2"}]))
    assert [t.kind for t in load_tests_file(f)] == ["stdio", "call"]
    assert all(t.origin == "user" for t in load_tests_file(f))
    g = tmp_path / "t.py"
    g.write_text("# comment\nassert f(1) == 2\n\nassert f(2) == 3\n")
    assert len(load_tests_file(g)) == 2
    h = tmp_path / "t.jsonl"
    h.write_text('{"input": "1", "output": "2"}\n{"oops": 1}\n')
    with pytest.raises(DatasetError, match="Test 2"):
        load_tests_file(h)
    with pytest.raises(DatasetError, match="not valid JSON"):
        f.write_text("[{")
        load_tests_file(f)
    with pytest.raises(DatasetError, match="Cannot read"):
        load_tests_file(tmp_path / "missing.json")
    t = TestCase("1", "2")
    assert merge_tests([t], [TestCase("1 ", "2", origin="statement")]) == [t]


def test_tracer_program_records_blocks(tmp_path) -> None:
    import subprocess
    import sys

    code = "n = int(input())\ns = 0\nfor i in range(n):\n    s += i\nprint(s)\n"
    program, stdin = traced_program(code, TestCase("3\n", "3\n"))
    r = subprocess.run(
        [sys.executable, "-c", program], input=stdin, capture_output=True, text=True, timeout=30
    )
    record = parse(r.stderr)
    assert record is not None and record["total"] >= 4 and len(record["blocks"]) <= 10
    text = render(record, code)
    assert "[block 0] <module> lines 1-4" in text and "s=3" in text


def test_tracer_masks_object_addresses_so_the_prompt_is_the_same_on_every_run() -> None:
    import re
    import subprocess
    import sys

    code = "class Box:\n    pass\nb = Box()\nf = lambda: 0\nraise ValueError(repr(f))\n"
    program, stdin = traced_program(code, TestCase("", ""))
    r = subprocess.run(
        [sys.executable, "-c", program], input=stdin, capture_output=True, text=True, timeout=30
    )
    text = render(parse(r.stderr), code)
    assert "b=<__main__.Box object at 0x...>" in text
    assert "raised ValueError: <function <lambda> at 0x...>" in text
    assert re.search(r"at 0x[0-9a-fA-F]", text) is None


def test_failures_and_probes_mask_object_addresses() -> None:
    assert without_addresses("<map object at 0x7fc5cecd8ca0>, at 0xZ") == "<map object at 0x...>, at 0xZ"
    got = Verdict(Status.WRONG, stdout="<generator object g at 0x7f00aa>\n", stderr="x at 0x55ab: boom")
    (failure,) = evaluation_from([got], [TestCase("1\n", "2\n")]).failures
    assert failure.got == "<generator object g at 0x...>\n" and failure.detail == "x at 0x...: boom"

    class Box:
        def run(self, code: str, stdin: str = "", timeout_s: float | None = None) -> Verdict:
            return Verdict(Status.PASS, stdout=f"<function f at {hex(id(stdin))}>\n")

    problem = PublicProblem("p", "print f", (TestCase("1\n", "2\n"),))
    assert (
        SandboxEvaluator(Box(), problem).probe("print(f)", ["a\n", "b\n"])
        == ("ok:<function f at 0x...>",) * 2
    )
