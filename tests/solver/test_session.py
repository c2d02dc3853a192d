from __future__ import annotations

from pathlib import Path

from bdc_assistant.backends.base import CancelToken
from bdc_assistant.config import load_settings
from bdc_assistant.solver import prompts
from bdc_assistant.solver.session import Solver, resolve_bundle_path
from bdc_assistant.types import Answer, CodeToken, StageDone, Started, ThoughtToken
from tests.fakes import FakeGenerator

PLAN = " Reverse the string.\n2. Compare it with the original.\n### Problem\nleaked next problem"
CODE = "def is_palindrome(s):\n    s = s.lower()\n    return s == s[::-1]\n```\ntrailing chatter"


def make_solver(gen: FakeGenerator, tmp_path: Path) -> Solver:
    settings = load_settings(tmp_path / "none.toml")
    return Solver(settings, gen, "completion")


def test_two_stages_stream_in_order_and_code_is_extracted(tmp_path: Path) -> None:
    gen = FakeGenerator([PLAN, CODE])
    events = list(make_solver(gen, tmp_path).solve("Write is_palindrome(s)."))
    kinds = [type(e) for e in events]
    assert kinds[0] is Started
    first_code = kinds.index(CodeToken)
    assert all(k is not CodeToken for k in kinds[:first_code])
    assert ThoughtToken in kinds[:first_code]
    stage_done = [e for e in events if isinstance(e, StageDone)]
    assert [s.stage for s in stage_done] == ["thought", "solution"]
    answer = events[-1]
    assert isinstance(answer, Answer)
    assert answer.thought == "1. Reverse the string.\n2. Compare it with the original."
    assert answer.code == "def is_palindrome(s):\n    s = s.lower()\n    return s == s[::-1]\n"
    # the plan was fed into the second prompt, and stops were honoured
    assert "Compare it with the original." in gen.calls[1][0]
    assert "leaked next problem" not in gen.calls[1][0]
    assert gen.customizations == [None]  # no bundle: the plain base answers
    assert answer.tokens > 0 and answer.bundle is None


def test_cancel_stops_generation_at_once(tmp_path: Path) -> None:
    gen = FakeGenerator([PLAN * 20, CODE], cancel_after=2)
    cancel = CancelToken()
    events = list(make_solver(gen, tmp_path).solve("p", cancel=cancel))
    answer = events[-1]
    assert isinstance(answer, Answer) and answer.cancelled
    assert len(gen.calls) == 1  # stage 2 never started
    assert sum(isinstance(e, ThoughtToken) for e in events) <= 3


def test_max_tokens_caps_solution(tmp_path: Path) -> None:
    gen = FakeGenerator([PLAN, "x = 1\n" * 100])
    answer = make_solver(gen, tmp_path).answer("p", max_tokens=4)
    assert sum(1 for _ in answer.solution_text) <= 4 * gen.chunk


def test_extract_code_variants() -> None:
    assert prompts.extract_code("text\n```py\nprint(1)\n```\nmore") == "print(1)\n"
    assert prompts.extract_code("```\nA\n```\n```python\nB\n```") == "B\n"
    assert prompts.extract_code("print(2)") == "print(2)\n"
    assert prompts.extract_code("```python\nunterminated()") == "unterminated()\n"
    assert prompts.extract_code("") == ""


def test_no_bundle_says_so(tmp_path: Path) -> None:
    settings = load_settings(tmp_path / "none.toml")
    path, note = resolve_bundle_path(settings, "none")
    assert path is None and "plain base model" in note
    settings.bundle.enabled = False
    path, note = resolve_bundle_path(settings, None)
    assert path is None and "disabled" in note


def test_completion_prompts_end_where_the_model_continues() -> None:
    p2t = prompts.thought_prompt("Sum two numbers.", "completion")
    assert p2t.text.endswith("### Plan\n1.")
    t2s = prompts.solution_prompt("Sum two numbers.", "1. Add them.", "completion")
    assert t2s.text.endswith("### Solution\n```python\n")
    assert "Sum two numbers." in t2s.text and "1. Add them." in t2s.text


STUB = 'def add(a: int, b: int) -> int:\n    """Return a + b.\n    >>> add(1, 2)\n    3\n    """\n'


def test_stub_problems_are_completed_not_restated(tmp_path: Path) -> None:
    assert prompts.code_stub(STUB) == STUB
    assert prompts.code_stub("Write a function add(a, b).") is None
    assert prompts.code_stub("def f():\n    return 1\n") is None  # already has a body
    gen = FakeGenerator([" Add them.", "    return a + b\n\nprint(add(1, 2))\n"])
    events = list(make_solver(gen, tmp_path).solve(STUB))
    answer = events[-1]
    assert isinstance(answer, Answer)
    assert gen.calls[1][0].endswith("```python\n" + STUB)
    assert answer.code == STUB + "    return a + b\n"  # cut at the top-level print
    streamed = "".join(e.text for e in events if isinstance(e, CodeToken))
    assert streamed.startswith(STUB)


def test_forget_prompt_cache_reaches_a_generator_that_has_one(tmp_path: Path) -> None:
    class CachingGenerator(FakeGenerator):
        forgotten = 0

        def forget_prompt_cache(self) -> None:
            self.forgotten += 1

    caching = CachingGenerator([])
    make_solver(caching, tmp_path).forget_prompt_cache()
    assert caching.forgotten == 1
    make_solver(FakeGenerator([]), tmp_path).forget_prompt_cache()  # no cache, nothing to do, no error
