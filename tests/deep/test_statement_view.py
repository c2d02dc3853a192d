"""A statement line too long to read is cut before it reaches any agent; nothing else changes."""

from __future__ import annotations

import pytest

from bdc_assistant.deep.llm import Budgets
from bdc_assistant.deep.statement_view import MAX_LINE_CHARS, visible_statement
from bdc_assistant.types import Problem, TestCase

from .conftest import ADD, make_runner

# ~109k characters on one line, like the example output in CodeContests 288C
HUGE = " ".join(str(i) for i in range(20_000))


def test_a_statement_without_long_lines_is_unchanged() -> None:
    text = "Read n.\n\n" + "x" * MAX_LINE_CHARS + "\nPrint it.\n"
    assert visible_statement(text) == text


def test_a_long_line_keeps_its_head_and_says_how_much_is_cut() -> None:
    text = f"Read n.\nExample output:\n{HUGE}\nThat is all.\n"
    shown = visible_statement(text)
    lines = shown.split("\n")
    assert lines[:2] == ["Read n.", "Example output:"] and lines[3:] == ["That is all.", ""]
    cut = lines[2]
    assert len(cut) < MAX_LINE_CHARS and cut.startswith("0 1 2 3 ")
    head, note = cut.split(" … ")
    assert HUGE.startswith(head + " ")  # cut at a space: no number is split
    assert note == f"[{len(HUGE) - len(head):,} more characters of this line are not shown]"
    assert visible_statement(shown) == shown  # idempotent


@pytest.mark.parametrize("dataset", ["humaneval", "mbpp", "codecontests"])
def test_only_codecontests_288c_changes_among_the_bundled_problems(dataset: str) -> None:
    """The cut must not touch any other bundled statement: their cached deep-bench responses stay valid."""
    from bdc_assistant.evaluation.datasets import load_dataset

    changed = [p.id for p in load_dataset(dataset) if visible_statement(p.statement) != p.statement]
    assert changed == (["288_c_polo_the_penguin_and_xor_operation_9826"] if dataset == "codecontests" else [])


def test_agents_see_the_cut_statement_and_programs_run_on_the_full_examples(server, store) -> None:
    long_test = TestCase("20000\n", HUGE + "\n")
    prob = Problem(
        "add-long", f"{ADD.statement}\nExample:\n{HUGE}\n", public_tests=(*ADD.public_tests, long_test)
    )
    seen_tests: list[tuple[TestCase, ...]] = []
    runner = make_runner(store, [server.url])
    inner = runner.evaluator_factory
    runner.evaluator_factory = lambda p: (seen_tests.append(p.public_tests), inner(p))[1]
    res = runner.run(prob, [f"openai:{server.url}:model-a"], Budgets(max_calls=6, budget_usd=0))
    assert res.calls > 0 and seen_tests and seen_tests[0][-1] == long_test
    prompts = [str(m["content"]) for r in server.script.requests for m in r["body"]["messages"]]
    assert any("more characters of this line are not shown" in p for p in prompts)
    assert max(len(line) for p in prompts for line in p.split("\n")) <= MAX_LINE_CHARS
