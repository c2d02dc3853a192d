"""Targets rebuilt around the stub (``sft.align_to_stub``): what the solver's one-turn prompt asks for, and
never a change in behaviour."""

from __future__ import annotations

from trainer.data import Trajectory
from trainer.pairs import build_pairs
from trainer.targets import align_to_stub

STUB = """import bisect
def right_insertion(a, x):
    \'\'\'
    Write a function to locate the right insertion point for a specified value in sorted order.
    Your code should pass this test:
    assert right_insertion([1,2,4,5],6)==4
    \'\'\'
"""

# as a deep-mode agent wrote it: the docstring without the example, the stub's import dropped (bisect comes in
# through a helper's import), an example run at the end
SOLUTION = """from bisect import bisect_right as br

def right_insertion(a, x):
    \'\'\'
    Write a function to locate the right insertion point for a specified value in sorted order.
    \'\'\'
    # the index after the last element <= x
    return br(a, x)

# Test the function
assert right_insertion([1,2,4,5],6)==4
print(right_insertion([1, 2], 1))
if __name__ == "__main__":
    print("ok")
"""


def test_the_solution_is_rebuilt_around_the_stub_without_example_usage() -> None:
    got = align_to_stub(SOLUTION, STUB)
    assert got == (
        "import bisect\n"
        "\n"
        "from bisect import bisect_right as br\n"
        "\n"
        "def right_insertion(a, x):\n"
        "    '''\n"
        "    Write a function to locate the right insertion point for a specified value in sorted order.\n"
        "    Your code should pass this test:\n"
        "    assert right_insertion([1,2,4,5],6)==4\n"
        "    '''\n"
        "    # the index after the last element <= x\n"
        "    return br(a, x)\n"
    )
    scope: dict = {}
    exec(compile(got, "aligned", "exec"), scope)  # the same function as before
    assert scope["right_insertion"]([1, 2, 4, 5], 6) == 4


def test_without_helpers_the_stub_comes_verbatim_then_the_body() -> None:
    plain = "def right_insertion(a, x):\n    return bisect.bisect_right(a, x)\n"
    assert align_to_stub(plain, STUB) == STUB + "    return bisect.bisect_right(a, x)\n"


def test_a_solution_that_cannot_be_aligned_safely_is_kept_as_written() -> None:
    renamed = "def right_insertion(xs, v):\n    import bisect\n    return bisect.bisect_right(xs, v)\n"
    two_spaces = "def right_insertion(a, x):\n  '''Doc.'''\n  return len(a)\n"  # the stub's docstring is at 4
    other_name = "def insertion_point(a, x):\n    return 0\n"
    one_line = "def right_insertion(a, x): return 0\n"
    for code in (renamed, two_spaces, other_name, one_line, "def broken(:\n"):
        assert align_to_stub(code, STUB) == code, code


def test_chat_pairs_train_on_the_aligned_target_unless_switched_off() -> None:
    rec = Trajectory("MbppEval/786", STUB, "", SOLUTION)
    (aligned,) = build_pairs([rec], "chat", ["p2s"])
    assert "Your code should pass this test" in aligned.target and "print(" not in aligned.target
    assert aligned.target.startswith("```python\nimport bisect\n")
    (raw,) = build_pairs([rec], "chat", ["p2s"], align=False)
    assert "Your code should pass this test" not in raw.target and "assert right_insertion" in raw.target


def test_completion_style_keeps_the_t2s_pair_the_raw_solution_would_lose() -> None:
    """The completion solver's t2s prompt ends with the stub: only a target that starts with it gives a pair."""
    solution = (
        'def right_insertion(a, x):\n    """Locate it."""\n    return bisect.bisect_right(a, x)\n\n'
        "assert right_insertion([1,2,4,5],6)==4\n"
    )
    rec = Trajectory("MbppEval/786", STUB, "Use bisect.", solution)
    assert [p.kind for p in build_pairs([rec], "completion", align=False)] == ["p2t"]
    kinds_targets = [(p.kind, p.target) for p in build_pairs([rec], "completion")]
    assert kinds_targets[1] == ("t2s", "    return bisect.bisect_right(a, x)\n```")
