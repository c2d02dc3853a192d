"""The solver for an instruction-tuned coder: chat prompts, plan on/off, and code extraction that copes with
the instruct model's habits (explanations around the block, demos under ``if __name__``, several blocks)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bdc_assistant.config import load_settings
from bdc_assistant.evaluation.datasets import load_dataset
from bdc_assistant.evaluation.problem_text import STDIO_NOTE, solver_text
from bdc_assistant.solver import prompts
from bdc_assistant.solver.session import Solver
from bdc_assistant.types import Answer, StageDone
from tests.fakes import FakeGenerator

STUB = 'def add(a, b):\n    """Return a + b.\n    >>> add(1, 2)\n    3\n    """\n'
CHATTY = (
    "Sure! Here is the function:\n\n```python\nimport math\n\ndef add(a, b):\n    return a + b\n\n"
    'if __name__ == "__main__":\n    x = int(input())\n    print(add(x, 2))\n```\n\n'
    "This adds the numbers. Example:\n```python\nprint(add(1, 2))\n```\n"
)


def _solver(tmp_path: Path, gen: FakeGenerator, plan: str) -> Solver:
    settings = load_settings(tmp_path / "none.toml")
    settings = settings.model_copy(update={"solver": settings.solver.model_copy(update={"plan": plan})})
    return Solver(settings, gen, "chat")


def test_plan_off_answers_in_one_turn_and_strips_the_demo(tmp_path: Path) -> None:
    gen = FakeGenerator([CHATTY])
    answer = _solver(tmp_path, gen, "off").answer(STUB)
    assert len(gen.calls) == 1  # no plan stage
    prompt = gen.calls[0][0]
    assert "Complete the following Python function:\n```python\n" + STUB + "```" in prompt
    assert "plan" not in prompt.lower()
    assert answer.thought == ""
    assert answer.code == "import math\n\ndef add(a, b):\n    return a + b\n"


def test_plan_on_feeds_the_plan_into_the_code_turn(tmp_path: Path) -> None:
    gen = FakeGenerator(["1. Add a and b.\n2. Return it.", CHATTY])
    events = list(_solver(tmp_path, gen, "on").solve(STUB))
    assert [e.stage for e in events if isinstance(e, StageDone)] == ["thought", "solution"]
    assert len(gen.calls) == 2
    assert "numbered plan" in gen.calls[0][0]
    assert "1. Add a and b.\n2. Return it." in gen.calls[1][0]
    answer = events[-1]
    assert isinstance(answer, Answer) and "input()" not in answer.code


def test_auto_plan_follows_the_validated_choice(tmp_path: Path) -> None:
    from bdc_assistant.solver.session import AUTO_PLAN

    solver = _solver(tmp_path, FakeGenerator([]), "auto")
    assert solver.plan_mode() == AUTO_PLAN["chat"]
    assert _solver(tmp_path, FakeGenerator([]), "on").plan_mode() == "on"


def test_free_text_problem_keeps_the_whole_program(tmp_path: Path) -> None:
    program = "```python\nn = int(input())\nprint(n * 2)\n\nif __name__ == '__main__':\n    pass\n```"
    answer = _solver(tmp_path, FakeGenerator([program]), "off").answer("Read n and print 2n.")
    assert answer.code.startswith("n = int(input())\nprint(n * 2)")  # a stdin program keeps its calls
    assert "__main__" in answer.code


def test_extract_code_prefers_the_block_defining_the_entry_point() -> None:
    text = "```python\nprint(f(2))\n```\nand\n```python\ndef f(x):\n    return x\n```"
    assert prompts.extract_code(text, "f") == "def f(x):\n    return x\n"
    assert prompts.extract_code(text) == "print(f(2))\n"


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("def f():\n    return 1\nprint(f())\n", "def f():\n    return 1\n"),
        ("X = 3\ndef f():\n    return X\nmain()\n", "X = 3\ndef f():\n    return X\n"),
        ("def f(:\n", "def f(:\n"),  # not Python: left alone for the judge to report
    ],
)
def test_strip_demo(code: str, expected: str) -> None:
    assert prompts.strip_demo(code) == expected


@pytest.mark.parametrize(
    ("problem", "name"),
    [
        ("Write a Python function is_palindrome(s) that returns True when…", "is_palindrome"),
        ("Write a function `count_vowels` that counts the vowels of a string.", "count_vowels"),
        (
            "Implement a function called merge_intervals which merges overlapping intervals.",
            "merge_intervals",
        ),
        ("Complete def area(r): so that it returns the area of a circle.", "area"),
        ("Read n from stdin and print the n-th Fibonacci number.", None),  # a program, not a function
        ("Write a function that prints hello.", None),
        ("Write code that uses the function print( to show it.", None),  # a builtin is not what was asked for
        ("Consider the function f(x) = x^2. Read n and print f(n).", None),  # mentioned, not asked for
    ],
)
def test_named_function_reads_the_name_from_prose(problem: str, name: str | None) -> None:
    from bdc_assistant.pysource import named_function

    assert named_function(problem) == name


def test_a_prose_problem_naming_a_function_gets_it_without_the_demo(tmp_path: Path) -> None:
    """What the 0.5B answered to `bdc ask` on a fresh install: the function, then example prints whose
    comments were wrong; the user asked for the function."""
    reply = (
        "Here is the function:\n```python\ndef is_palindrome(s):\n    s = s.lower()\n    return s == s[::-1]\n\n"
        '# Example usage:\nprint(is_palindrome("No lemon, no melon"))  # True\n```\nThis works because…'
    )
    problem = "Write a Python function is_palindrome(s) that returns True when s reads the same both ways."
    answer = _solver(tmp_path, FakeGenerator([reply]), "off").answer(problem)
    assert answer.code == "def is_palindrome(s):\n    s = s.lower()\n    return s == s[::-1]\n"


def test_mbpp_example_goes_into_the_docstring() -> None:
    problem = load_dataset("mbpp-val")[0]
    text = solver_text(problem)
    assert "Your code should pass this test:\n    assert " in text
    assert prompts.code_stub(text) == text.strip("\n").rstrip() + "\n"  # still a stub to complete
    private = [
        ln.strip() for ln in problem.private_tests[0].input.splitlines() if ln.strip().startswith("assert")
    ]
    assert private[1] not in text and private[2] not in text  # the private asserts stay hidden


def test_mbpp_stub_naming_a_helper_is_replaced_by_the_task_and_its_test(tmp_path: Path) -> None:
    """MbppEval/580's stub is the reference's helper ``even_ele``; its test calls ``extract_even``."""
    problem = next(p for p in load_dataset("mbpp-val") if p.id == "MbppEval/580")
    text = solver_text(problem)
    assert "def even_ele" not in text and prompts.code_stub(text) is None
    assert text.startswith("Write a function to remove uneven elements")
    assert text.endswith(
        "Your code should pass this test:\nassert extract_even((4, 5, (7, 6, (2, 4)), 6, 8)) == (4, (6, (2, 4)), 6, 8)"
    )
    reply = (
        "```python\ndef even_ele(t):\n    return t\n```\nThen:\n```python\ndef extract_even(t):\n"
        "    return even_ele(t)\n\nprint(extract_even((1,)))\n```"
    )
    answer = _solver(tmp_path, FakeGenerator([reply]), "off").answer(text)
    assert (
        answer.code == "def extract_even(t):\n    return even_ele(t)\n"
    )  # the block the test calls, no demo


def test_codecontests_text_says_stdin_and_drops_the_harness_notes() -> None:
    problem = load_dataset("codecontests-val")[0]
    text = solver_text(problem)
    assert text.endswith(STDIO_NOTE)
    assert "run.sh" not in text


def test_validation_split_is_fixed_and_disjoint() -> None:
    val = {p.id for p in load_dataset("mbpp-val")}
    train = {p.id for p in load_dataset("mbpp-train")}
    assert len(val) == 60 and not val & train and len(val | train) == 170
    cc_val = load_dataset("codecontests-val")
    assert len(cc_val) == 60
    assert sum((p.difficulty or 0) >= 11 for p in cc_val) == 30


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Do it.\nassert f(2) == 4", "f"),
        ("assert set(common(a, b)) == {1}", "common"),  # builtins are skipped, the user's function found
        ("assert math.isclose(area(2), 12.56, rel_tol=0.01)", "area"),
        ("assert len([1]) == 1", None),
        ("no test here", None),
    ],
)
def test_asserted_function(text: str, expected: str | None) -> None:
    from bdc_assistant.pysource import asserted_function

    assert asserted_function(text) == expected
