"""``trainer.synthesize`` (self-instruct with an execution filter): an exercise becomes a training line only when
it parses, its solution passes all its tests in the real sandbox, it is not a validation/test problem in
disguise and not a repeat; the line is shown to the solver exactly as an MBPP problem; a rerun resumes."""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bdc_assistant.evaluation.problem_text import solver_text
from bdc_assistant.sandbox import Sandbox, SandboxLimits
from bdc_assistant.types import Problem, TestCase
from trainer import synthesize as sy

GOOD = """TASK: Write a function to count the vowels in a string.
```python
import re
def count_vowels(s):
    '''
    Count vowels.
    '''
    return len(re.findall(r"[aeiou]", s.lower()))

print(count_vowels("abc"))
```
```python
assert count_vowels("hello") == 2
assert count_vowels("") == 0
assert count_vowels("AEIOU") == 5
assert count_vowels("hello") == 2
```
The function uses a regular expression.
"""

# the solution is wrong on its own third test
WRONG = GOOD.replace("s.lower()", "s")
# one block, asserts inline, as the 1.5B often answers
ONE_BLOCK = """TASK: Write a function to find the sum of the digits of a number.
```python
def digit_sum(n):
    return sum(int(d) for d in str(n))

assert digit_sum(123) == 6
assert digit_sum(0) == 0
assert digit_sum(1000) == 1
```"""


def test_an_answer_in_either_layout_parses_to_task_solution_and_distinct_tests() -> None:
    ex = sy.parse_exercise(GOOD)
    assert ex is not None
    assert ex.task == "Write a function to count the vowels in a string."
    assert ex.entry_point == "count_vowels"
    assert "print(" not in ex.solution and ex.solution.startswith("import re\n")
    assert ex.tests == (
        'assert count_vowels("hello") == 2',
        'assert count_vowels("") == 0',
        'assert count_vowels("AEIOU") == 5',
    )
    one = sy.parse_exercise(ONE_BLOCK)
    assert one is not None and one.entry_point == "digit_sum" and len(one.tests) == 3
    assert "assert" not in one.solution


@pytest.mark.parametrize(
    "text",
    [
        GOOD.replace("TASK:", "Here:"),  # no task sentence
        GOOD.replace("Write a function to", "Count"),  # not a task sentence
        ONE_BLOCK.replace("assert digit_sum(1000) == 1\n", ""),  # two tests < min_tests
        ONE_BLOCK.replace("return sum", "return sum("),  # does not parse
        "TASK: Write a function to do nothing.\n```python\nx = 1\nassert x == 1\n```",  # no function
        ONE_BLOCK.replace("digit_sum(0)", "len([0])").replace(
            "digit_sum(1000)", "abs(1)"
        ),  # asserts not calling it
    ],
)
def test_what_is_not_an_exercise_is_none(text: str) -> None:
    assert sy.parse_exercise(text) is None


def test_the_solver_sees_an_exercise_exactly_as_an_mbpp_problem() -> None:
    ex = sy.parse_exercise(GOOD)
    assert ex is not None
    p = ex.problem("selfinstruct/MbppEval/2/0")
    text = solver_text(p)
    assert text == (
        "import re\ndef count_vowels(s):\n    '''\n    Write a function to count the vowels in a string.\n"
        "    Your code should pass this test:\n    assert count_vowels(\"hello\") == 2\n    '''\n"
    )
    assert p.public_tests[0].input == 'candidate = count_vowels\nassert count_vowels("hello") == 2\n'
    assert p.private_tests[0].input.count("assert") == 3


@pytest.fixture(scope="module")
def box() -> Iterator[Sandbox]:
    with Sandbox(workers=1, limits=SandboxLimits(timeout_s=4.0)) as sb:
        yield sb


class BagEncoder:
    """Bag-of-words unit vectors: identical sentences have cosine 1, unrelated ones about 0."""

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), 512), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in t.lower().replace(".", "").split():
                out[i, zlib.crc32(w.encode()) % 512] += 1  # hash() is salted per process
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def held_out(name: str, task: str) -> Problem:
    stub = f"def {name}(x):\n    '''\n    {task}\n    '''\n"
    return Problem("MbppEval/11", stub, kind="call", entry_point=name, starter_code=stub, source="mbpp")


class ScriptedChat:
    """A generator whose answer depends on the sampling seed (answer i of a seed problem has seed i)."""

    model_id = "scripted"

    def __init__(self, by_seed: dict[int, str]) -> None:
        self.by_seed = by_seed
        self.asked: list[int] = []

    def chat(self, messages: Sequence[dict[str, str]], params: Any) -> Iterator[str]:
        self.asked.append(params.seed)
        yield self.by_seed[params.seed]

    def set_customization(self, c: Any) -> None:
        pass


def seed_problem(pid: str = "MbppEval/2") -> Problem:
    stub = "def add(a, b):\n    '''\n    Write a function to add two numbers.\n    '''\n"
    return Problem(
        pid,
        stub,
        kind="call",
        entry_point="add",
        starter_code=stub,
        public_tests=(TestCase("candidate = add\nassert add(1, 2) == 3\n", kind="call"),),
        private_tests=(
            TestCase("def check(candidate):\n    assert candidate(2, 2) == 4\n\ncheck(add)\n", kind="call"),
        ),
        reference_solution=stub + "    return a + b\n",
        source="mbpp",
    )


def test_only_verified_new_exercises_become_lines(box: Sandbox) -> None:
    copy_of_seed = ONE_BLOCK.replace("digit_sum", "add")
    leaked = ONE_BLOCK.replace("digit_sum", "secret_fn")
    near_val = ONE_BLOCK.replace("digit_sum", "sum_digits")  # same task sentence as a validation problem
    answers = {
        0: WRONG,
        1: GOOD,
        2: GOOD,
        3: "no code here",
        4: copy_of_seed,
        5: leaked,
        6: near_val,
        7: ONE_BLOCK,
    }
    guard = sy.Guard(
        BagEncoder(),
        [
            held_out("secret_fn", "Write a function to reverse it."),
            held_out("other", "Write a function to find the sum of the digits of a number."),
        ],
        0.85,
    )
    cfg = sy.SynthConfig(per_seed=8)
    gen = ScriptedChat(answers)
    record = sy.synthesize_seed(gen, box, guard, seed_problem(), cfg, "local:scripted")
    lines = record["lines"]
    assert [x["entry_point"] for x in lines] == ["count_vowels"]  # ONE_BLOCK is too close to "other"
    assert record["refused"] == {
        "fails its own tests": 1,
        "a repeat": 1,
        "not an exercise": 1,
        "a copy of its example": 1,
        "a validation/test function name": 1,
        "too close to a validation/test problem": 2,
    }
    line = lines[0]
    assert line["problem_id"] == "selfinstruct/MbppEval/2/1" and line["verified"] is True
    assert line["source"] == "selfinstruct:mbpp-train:t0.8:s1" and line["policy"] == "local:scripted"
    assert "Your code should pass this test:" in line["problem"]
    assert gen.asked == list(range(8))


def test_the_example_shown_is_the_seed_in_the_answer_format() -> None:
    text = sy.example_exercise(seed_problem())
    ex = sy.parse_exercise(text, min_tests=2)
    assert ex is not None and ex.entry_point == "add"
    assert ex.tests == ("assert add(1, 2) == 3", "assert add(2, 2) == 4")


def test_a_rerun_skips_finished_seeds_and_still_refuses_their_repeats(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, box: Sandbox
) -> None:
    import bdc_assistant.deep.collect as collect_mod
    import bdc_assistant.encoder as encoder_mod
    import bdc_assistant.sandbox as sandbox_mod
    from bdc_assistant.config import load_settings

    seeds = [seed_problem("MbppEval/2"), seed_problem("MbppEval/3")]
    gen = ScriptedChat({0: GOOD, 1: ONE_BLOCK})
    solver = type("S", (), {"generator": gen, "close": lambda self: None})()
    settings = load_settings(config_file=tmp_path / "none.toml")
    monkeypatch.setattr(collect_mod, "training_problems", lambda d, limit=None: seeds)
    monkeypatch.setattr(sy, "_open_solver", lambda cfg, scratch: (solver, settings))
    monkeypatch.setattr(
        sy, "forbidden_problems", lambda: [held_out("secret_fn", "Write a function to hide.")]
    )
    monkeypatch.setattr(encoder_mod, "default_encoder", lambda s: BagEncoder())
    shared = type("B", (), {"run_tests": box.run_tests, "close": lambda self: None})()
    monkeypatch.setattr(sandbox_mod, "sandbox_from_settings", lambda s: shared)
    out = tmp_path / "si.jsonl"
    first = sy.synthesize_seed(
        gen, box, sy.Guard(BagEncoder(), [], 0.85), seeds[0], sy.SynthConfig(per_seed=2), "p"
    )
    (tmp_path / "si.jsonl.progress.jsonl").write_text(json.dumps(first) + '\n{"problem_id": "Mbpp')
    gen.asked.clear()
    summary = sy.run(sy.SynthConfig(per_seed=2), out, lambda s: None)
    assert gen.asked == [0, 1]  # only MbppEval/3 was asked
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    # MbppEval/3 wrote the same two exercises as MbppEval/2 did: repeats of what the killed run kept
    assert [x["problem_id"] for x in lines] == ["selfinstruct/MbppEval/2/0", "selfinstruct/MbppEval/2/1"]
    assert summary["exercises"] == 2 and summary["refused"] == {"a repeat": 2}


@pytest.mark.parametrize("args", [["--per-seed", "0"], ["--min-tests", "1"], ["--max-similarity", "0"]])
def test_bad_settings_are_one_sentence(
    args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert sy.main([*args, "--out", str(tmp_path / "x.jsonl")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: trainer.synthesize needs") and err.count("\n") == 1
    assert not (tmp_path / "x.jsonl").exists()


def test_a_resumed_run_drops_what_the_current_guard_refuses(tmp_path: Path, box: Sandbox) -> None:
    # kept under an earlier, looser guard: the vowels exercise, then the digit sum twice (the second a repeat)
    loose = sy.Guard(BagEncoder(), [], 0.99)
    first = sy.synthesize_seed(
        ScriptedChat({0: GOOD, 1: ONE_BLOCK}), box, loose, seed_problem(), sy.SynthConfig(per_seed=2), "p"
    )
    again = sy.synthesize_seed(
        ScriptedChat({0: ONE_BLOCK.replace("digit_sum", "digits_total")}),
        box,
        sy.Guard(BagEncoder(), [], 0.99),
        seed_problem("MbppEval/3"),
        sy.SynthConfig(per_seed=1),
        "p",
    )
    done = {"MbppEval/2": first, "MbppEval/3": again}
    strict = sy.Guard(
        BagEncoder(), [held_out("hidden", "Write a function to count the vowels in a string.")], 0.75
    )
    out, progress = tmp_path / "si.jsonl", tmp_path / "si.jsonl.progress.jsonl"
    sy.rescreen(done, strict, progress, out)
    assert [json.loads(x)["entry_point"] for x in out.read_text().splitlines()] == ["digit_sum"]
    records = [json.loads(x) for x in progress.read_text().splitlines()]
    assert [r["kept"] for r in records] == [1, 0]
    assert records[0]["refused"] == {"too close to a validation/test problem": 1}
    assert records[1]["refused"] == {"a repeat": 1}  # same task sentence as the digit sum kept first


@pytest.mark.parametrize("dataset", ["mbpp-val", "humaneval", "codecontests-val"])
def test_validation_and_test_sets_are_never_seeds(dataset: str, tmp_path: Path) -> None:
    from bdc_assistant.errors import DatasetError

    with pytest.raises(DatasetError):
        sy.run(sy.SynthConfig(dataset=dataset), tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists()
