"""Comparison rules, verdict classes for call-based tests, and example extraction."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bdc_assistant.sandbox import Sandbox, SandboxLimits, extract_examples, outputs_match
from bdc_assistant.sandbox.judges import values_match
from bdc_assistant.types import Status, TestCase


def test_outputs_match_rules() -> None:
    assert outputs_match("1 2\n3\n", "1 2   \n3\n\n\n")
    assert outputs_match("1 2 3", "1\n2\n3\n")  # tokens: line breaks count as whitespace
    assert outputs_match("YES", "yes")
    assert outputs_match("0.3333333", "0.33333331")
    assert outputs_match("2.0", "2")
    assert not outputs_match("0.33", "0.34")
    assert not outputs_match("12345678901234567890", "12345678901234567891")  # ints are exact
    assert not outputs_match("1 2", "1 2 3")
    assert not outputs_match("abc", "abd")
    assert not outputs_match("nan", "nan0")


def test_values_match_apps_quirks() -> None:
    assert values_match("[1, 2]", "[1, 2]")
    assert values_match("[5]", "5")  # APPS wraps expected values in a one-element list
    assert values_match("0.1", "0.10000000001")
    assert not values_match("[1, 2]", "[2, 1]")


@pytest.fixture(scope="module")
def box() -> Iterator[Sandbox]:
    with Sandbox(workers=2, limits=SandboxLimits(timeout_s=2.0)) as sb:
        yield sb


def test_call_based_verdicts(box: Sandbox) -> None:
    code = "def add(a, b):\n    return a + b\n"
    tests = [
        TestCase("assert add(1, 2) == 3", kind="call"),
        TestCase("assert add(1, 2) == 4", kind="call"),
        TestCase("assert add(1) == 1", kind="call"),
        TestCase("def check(candidate):\n    assert candidate(2, 2) == 4\ncheck(add)\n", kind="call"),
        TestCase("assert add(", kind="call"),
        TestCase("[1, 2]", "3", kind="call", fn_name="add"),
        TestCase("[1, 2]", "4", kind="call", fn_name="add"),
        TestCase("[1, 2]", "3", kind="call", fn_name="sub"),
    ]
    got = [v.status for v in box.run_tests(code, tests)]
    assert got == [
        Status.PASS,
        Status.WRONG,
        Status.RUNTIME_ERROR,
        Status.PASS,
        Status.COMPILE_ERROR,
        Status.PASS,
        Status.WRONG,
        Status.RUNTIME_ERROR,
    ]


def test_solution_class_and_compile_error(box: Sandbox) -> None:
    code = "class Solution:\n    def twice(self, x):\n        return 2 * x\n"
    assert box.run_tests(code, [TestCase("[4]", "8", kind="call", fn_name="twice")])[0].passed
    v = box.run_tests("def f(:\n", [TestCase("", "")])[0]
    assert v.status is Status.COMPILE_ERROR and "SyntaxError" in v.detail


def test_stdio_verdicts_and_feedback(box: Sandbox) -> None:
    code = "n = int(input())\nprint(n * 2)\n"
    vs = box.run_tests(code, [TestCase("2\n", "4\n"), TestCase("3\n", "7\n"), TestCase("x\n", "0\n")])
    assert [v.status for v in vs] == [Status.PASS, Status.WRONG, Status.RUNTIME_ERROR]
    assert "expected '7', got '6'" in vs[1].detail
    assert "ValueError" in vs[2].stderr and "solution.py" in vs[2].stderr


def test_process_semantics_match_a_fresh_interpreter(box: Sandbox) -> None:
    """atexit hooks, exit codes, buffered writers flushed at teardown, sys.stdin.buffer, recursion."""
    code = (
        "import atexit, sys\n"
        "atexit.register(lambda: sys.__stdout__.write('bye\\n'))\n"
        "data = sys.stdin.buffer.read().split()\n"
        "sys.setrecursionlimit(100000)\n"
        "def depth(n):\n    return 0 if n == 0 else 1 + depth(n - 1)\n"
        "print(sum(map(int, data)), depth(20000))\n"
    )
    v = box.run(code, "1 2 3\n")
    assert v.status is Status.PASS and v.stdout == "6 20000\nbye\n"
    assert box.run("import sys\nsys.exit(3)\n").exit_code == 3
    assert box.run("raise SystemExit('bad')\n").stderr.strip() == "bad"


def test_extract_examples_markdown_and_codeforces_and_doctest() -> None:
    md = "## Examples\n\n### Example 1\n\n**Input**:\n```\n1 2\n```\n\n**Output**:\n```\n3\n```\n"
    assert extract_examples(md) == [TestCase("1 2\n", "3\n", origin="statement")]
    cf = "Input\n\nThe first line...\n\nExamples\n\nInput\n\n5\n\n\nOutput\n\n25\n\nInput\n\n2\n\nOutput\n\n4\n\nNote\n"
    got = extract_examples(cf)
    assert [(t.input, t.output) for t in got] == [("5\n", "25\n"), ("2\n", "4\n")]
    doc = 'def sq(x):\n    """\n    >>> sq(3)\n    9\n    >>> sq(-2)\n    4\n    """\n'
    calls = extract_examples(doc)
    assert [t.kind for t in calls] == ["call", "call"]
    assert calls[0].input.startswith("assert (sq(3)) == (9)")


def test_extract_examples_assert_lines_of_a_call_problem() -> None:
    mbpp = (
        "Write a function to find the shared elements of two lists.\n"
        "assert similar_elements((3, 4, 5, 6), (5, 7, 4, 10)) == (4, 5)\n"
        "assert similar_elements((3, 4, 5, 6), (5, 7, 4, 10)) == (4, 5)\n"  # stated twice: one test
        "assert nothing_called\n"  # no call: not an example
        "assert broken(1 ==\n"  # not Python: not an example
    )
    got = extract_examples(mbpp)
    assert got == [
        TestCase(
            "assert similar_elements((3, 4, 5, 6), (5, 7, 4, 10)) == (4, 5)\n",
            kind="call",
            origin="statement",
        )
    ]
    assert extract_examples(mbpp, asserts=False) == []  # a benchmark's public split keeps its own rule
    stdio = "Print twice n.\n\nExamples\nInput\n3\nOutput\n6\n\nassert twice(3) == 6\n"
    assert [t.kind for t in extract_examples(stdio)] == ["stdio"]  # a stdin program has no function to call
