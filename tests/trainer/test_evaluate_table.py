"""The Table-2 shape: groups (CodeContests split easy/hard like the paper), strict PR/AC, overall."""

from __future__ import annotations

from bdc_assistant.types import Problem
from trainer.evaluate import group_of, markdown, slug, table


def _rec(pid: str, statuses: list[str]) -> dict:
    return {
        "id": pid,
        "kind": "stdio",
        "error": None,
        "candidates": [{"public": statuses[:1], "private": statuses[1:]}],
    }


def test_groups_follow_the_paper_split() -> None:
    assert group_of("codecontests", Problem("a", "s", difficulty=7)) == "codecontests-easy"
    assert group_of("codecontests", Problem("a", "s", difficulty=11)) == "codecontests-hard"
    assert group_of("humaneval", Problem("a", "s")) == "humaneval"
    assert slug("SFT on cluster 0 (a-b)") == "sft-on-cluster-0-a-b"


def test_table_values_and_markdown() -> None:
    results = {
        "w/o tuning": {"humaneval": [_rec("1", ["pass", "wrong"]), _rec("2", ["wrong", "wrong"])]},
        "DisenLoRA": {
            "humaneval": [_rec("1", ["pass", "pass"]), _rec("2", ["pass", "wrong"])],
            "codecontests-easy": [_rec("3", ["pass", "pass", "pass", "pass"])],
        },
    }
    tab = table(results)
    assert tab["columns"] == ["humaneval", "codecontests-easy", "overall"]
    base = tab["rows"]["w/o tuning"]["humaneval"]
    assert base["pr"] == 25.0 and base["ac"] == 0.0 and base["n"] == 2
    dis = tab["rows"]["DisenLoRA"]
    assert dis["humaneval"]["pr"] == 75.0 and dis["humaneval"]["ac"] == 50.0
    assert dis["overall"]["n"] == 3 and dis["overall"]["ac"] == round(200 / 3, 2)
    md = markdown(tab, "T")
    assert "| DisenLoRA | 75.00 | 50.00 | 100.00 | 100.00 |" in md
    assert "| w/o tuning | 25.00 | 0.00 | – | – |" in md
    # the paper's private-only table follows, and HumanEval's PR ≡ AC caveat is printed
    paper = md.split("Paper-compatible mode", 1)[1]
    assert (
        "| DisenLoRA | 50.00 | 50.00 | 100.00 | 100.00 | 66.67 | 66.67 |" in paper
    )  # /2 fails its private test
    assert "PR ≡ AC" in md


def test_every_row_carries_its_paired_difference_from_the_base() -> None:
    ok, bad = ["pass", "pass"], ["pass", "wrong"]
    base = [_rec(str(i), ok if i < 4 else bad) for i in range(10)]  # 4 of 10
    better = [_rec(str(i), ok if i < 8 else bad) for i in range(10)]  # the base's 4 plus 4 more
    tab = table(
        {"w/o tuning": {"mbpp-val": base}, "DisenLoRA": {"mbpp-val": better}, "Same": {"mbpp-val": base}}
    )
    vs = tab["rows"]["DisenLoRA"]["overall"]["vs_base"]
    assert (vs["ac_diff"], vs["solved"], vs["base_solved"], vs["n"]) == (40.0, 8, 4, 10)
    assert 0 < vs["ci95"][0] <= 40.0 <= vs["ci95"][1]  # every resample gains: the interval excludes 0
    assert tab["rows"]["Same"]["overall"]["vs_base"]["ci95"] == [0.0, 0.0]
    assert "vs_base" not in tab["rows"]["w/o tuning"]["overall"]
    md = markdown(tab, "T")
    assert "| DisenLoRA | 90.00 | 80.00 | 90.00 | 80.00 | +40.00 [+" in md
    assert "an interval that contains 0 is not a difference" in md


def test_the_difference_from_the_base_pairs_problems_by_id_not_by_position() -> None:
    ok, bad = ["pass", "pass"], ["pass", "wrong"]
    base = [_rec(str(i), ok if i < 3 else bad) for i in range(6)]  # solves 0, 1, 2
    same_reversed = list(reversed(base))
    other_problems = [_rec(str(i + 100), ok) for i in range(6)]
    tab = table(
        {
            "w/o tuning": {"mbpp-val": base},
            "Reversed": {"mbpp-val": same_reversed},
            "Elsewhere": {"mbpp-val": other_problems},
        }
    )
    # paired by position, the reversed row would disagree with the base on every problem
    assert tab["rows"]["Reversed"]["overall"]["vs_base"]["ci95"] == [0.0, 0.0]
    assert "vs_base" not in tab["rows"]["Elsewhere"]["overall"]  # nothing to pair with: no difference claimed


def test_answers_are_cached_per_bundle_content(tmp_path) -> None:
    """Retraining one row's bundle re-answers that row only; unchanged rows and raised limits reuse answers."""
    import json
    from dataclasses import dataclass, field

    from bdc_assistant.types import Answer, TestCase
    from trainer.evaluate import evaluate_methods, row_key

    @dataclass
    class Verdict:
        passed: bool = True
        status: str = "pass"
        detail: str = ""
        stderr: str = ""

    class PassAll:
        def run_tests(self, code, tests, *, timeout_s=None, checker=None):
            return [Verdict() for _ in tests]

    @dataclass
    class Solver:
        bundle: object
        log: list = field(default_factory=list)

        def answer(self, problem: str, max_tokens: int | None = None) -> Answer:
            self.log.append((self.bundle, problem))
            return Answer(problem, "", "x = 1", "x = 1", "fake", "fake", None, 3, 0.1, 30.0)

        def close(self) -> None:
            pass

    def bundle(name: str, digest: str) -> object:
        d = tmp_path / name
        d.mkdir(exist_ok=True)
        (d / "manifest.json").write_text(
            json.dumps({"files": {"hypernet.safetensors": digest}, "K": 2, "r": 4})
        )
        return d

    problems = [
        Problem(str(i), f"problem {i}", public_tests=(TestCase("", "", origin="dataset"),)) for i in range(3)
    ]
    calls: list = []

    def open_solver(b, sample):
        assert sample == 0  # one answer per problem unless asked
        s = Solver(b.name if b else "base")
        s.log = calls
        return s

    rows = [("w/o tuning", None), ("SFT on all", bundle("sft", "aaa")), ("DisenLoRA", bundle("dis", "bbb"))]
    out = tmp_path / "runs"
    evaluate_methods(
        rows, {"humaneval": problems[:2]}, open_solver, PassAll(), out, timeout_s=1, row_key=row_key
    )
    assert len(calls) == 6
    calls.clear()
    # the hypernetwork is retrained (new weights), and the limit is raised from 2 to 3 problems
    rows[2] = ("DisenLoRA", bundle("dis", "ccc"))
    res = evaluate_methods(
        rows, {"humaneval": problems}, open_solver, PassAll(), out, timeout_s=1, row_key=row_key
    )
    from bdc_assistant.evaluation.problem_text import solver_text

    asked = {solver_text(p): p.statement for p in problems}  # the solver sees the statement plus the I/O note
    assert sorted((b, asked[text]) for b, text in calls) == sorted(
        [("base", "problem 2"), ("sft", "problem 2")] + [("dis", f"problem {i}") for i in range(3)]
    )
    assert all(len(res[label]["humaneval"]) == 3 for label, _ in rows)
    assert row_key(None) == "base" and row_key(rows[1][1]) != row_key(rows[2][1])


def _rows(pattern: str, group: str = "mbpp-val") -> dict:
    """One row's records from a string of 1 (solved) / 0 (failed), problem i = character i."""
    ok, bad = ["pass", "pass"], ["pass", "wrong"]
    return {group: [_rec(str(i), ok if c == "1" else bad) for i, c in enumerate(pattern)]}


def test_verdict_is_met_only_when_disenlora_beats_the_base_and_every_static_row() -> None:
    from trainer.verdict import markdown as verdict_md
    from trainer.verdict import verdict

    base, disen = "1100000000", "1111000000"
    v = verdict(
        {"w/o tuning": _rows(base), "TIES": _rows("1110000000"), "DisenLoRA": _rows(disen)}, base="w/o tuning"
    )
    s = v["sets"]["mbpp-val"]
    assert v["met"] is True and s["met"] and s["rows_ahead"] == []
    assert (s["solved"], s["vs_base"]["solved"], s["vs_base"]["diff"]) == (4, 2, 20.0)
    assert s["vs_rows"]["TIES"]["diff"] == 10.0
    assert not s["significant"] and "inside the noise on mbpp-val" in v["sentence"]

    # a static row ahead of DisenLoRA fails the claim even though DisenLoRA beats the base
    v = verdict(
        {"w/o tuning": _rows(base), "SFT on all": _rows("1111100000"), "DisenLoRA": _rows(disen)},
        base="w/o tuning",
    )
    assert v["met"] is False and v["sets"]["mbpp-val"]["rows_ahead"] == ["SFT on all"]
    assert v["sentence"].startswith("Not met") and "behind SFT on all" in v["sentence"]
    assert "| SFT on all | 5 | -10.00 [" in verdict_md(v)

    # a tie with the base is not a gain; every set has to hold, not the pooled one
    both = {
        "w/o tuning": {**_rows(base), **_rows("10", "codecontests-val-easy")},
        "DisenLoRA": {**_rows(disen), **_rows("10", "codecontests-val-easy")},
    }
    v = verdict(both, base="w/o tuning")
    assert v["sets"]["mbpp-val"]["met"] and not v["sets"]["codecontests-val-easy"]["met"]
    assert v["met"] is False and "codecontests-val-easy: 1 vs the base's 1 of 2" in v["sentence"]


def test_verdict_needs_both_rows_on_the_same_problems() -> None:
    from trainer.verdict import verdict

    assert verdict({"DisenLoRA": _rows("1")}, base="w/o tuning")["met"] is None
    # a row answered on other problems is left out of the comparison rather than paired wrongly
    v = verdict(
        {"w/o tuning": _rows("10"), "TIES": _rows("111"), "DisenLoRA": _rows("11")}, base="w/o tuning"
    )
    assert v["met"] is True and "TIES" not in v["sets"]["mbpp-val"]["vs_rows"]


def test_sampled_rows_average_over_answers_and_pair_problems_by_pass_fraction() -> None:
    """Two samples per problem: cells are means over answers, counts are problems, ΔAC pairs fractions."""
    from trainer.verdict import verdict

    ok, bad = ["pass", "pass"], ["pass", "wrong"]

    def sampled(*patterns: str) -> dict:
        return {
            "mbpp-val": [_rec(str(i), ok if c == "1" else bad) for p in patterns for i, c in enumerate(p)]
        }

    # base: problem 0 always, problem 1 once of two; DisenLoRA: problems 0 and 1 always, problem 2 once
    results = {"w/o tuning": sampled("1100", "1000"), "DisenLoRA": sampled("1110", "1100")}
    tab = table(results)
    assert tab["samples"] == 2
    dis = tab["rows"]["DisenLoRA"]["mbpp-val"]
    assert dis["n"] == 4 and dis["ac"] == 62.5 and tab["rows"]["w/o tuning"]["mbpp-val"]["ac"] == 37.5
    vs = tab["rows"]["DisenLoRA"]["overall"]["vs_base"]
    # per problem: +0, +0.5, +0.5, +0 over 4 problems (not 8 answers: the interval is over problems)
    assert (vs["ac_diff"], vs["solved"], vs["base_solved"], vs["n"]) == (25.0, 2.5, 1.5, 4)
    assert "mean over 2 sampled answers per problem" in markdown(tab, "T")
    v = verdict(results, base="w/o tuning")
    s = v["sets"]["mbpp-val"]
    assert s["n"] == 4 and s["solved"] == 2.5 and s["vs_base"]["diff"] == 25.0 and v["met"] is True
    # rows that disagree on how many answers a problem has cannot share a table
    import pytest

    with pytest.raises(ValueError, match="different numbers of samples"):
        table({"w/o tuning": sampled("1100"), "DisenLoRA": sampled("1110", "1100")})


def test_each_sample_is_its_own_resumable_run_with_its_own_seed(tmp_path) -> None:
    from dataclasses import dataclass

    from bdc_assistant.types import Answer, TestCase
    from trainer.evaluate import evaluate_methods

    @dataclass
    class Verdict:
        passed: bool
        status: str
        detail: str = ""
        stderr: str = ""

    class PassIfOdd:
        """The sandbox: code "x = 1" passes, "x = 0" fails."""

        def run_tests(self, code, tests, *, timeout_s=None, checker=None):
            good = code.strip().endswith("1")
            return [Verdict(good, "pass" if good else "wrong") for _ in tests]

    opened: list = []

    class Solver:
        def __init__(self, sample: int) -> None:
            self.sample = sample

        def answer(self, problem: str, max_tokens: int | None = None) -> Answer:
            code = f"x = {self.sample % 2}"  # sample 1 and 3 pass, 0 and 2 fail
            return Answer(problem, "", code, code, "fake", "fake", None, 3, 0.1, 30.0)

        def close(self) -> None:
            pass

    def open_solver(bundle, sample):
        opened.append(sample)
        return Solver(sample)

    problems = [
        Problem(str(i), f"p{i}", public_tests=(TestCase("", "", origin="dataset"),)) for i in range(3)
    ]
    out = tmp_path / "runs"
    res = evaluate_methods(
        [("w/o tuning", None)], {"mbpp-val": problems}, open_solver, PassIfOdd(), out, timeout_s=1, samples=4
    )
    assert opened == [0, 1, 2, 3]
    assert sorted(p.name for p in (out / "w-o-tuning").iterdir()) == [
        "mbpp-val",
        "mbpp-val.s1",
        "mbpp-val.s2",
        "mbpp-val.s3",
    ]
    recs = res["w/o tuning"]["mbpp-val"]
    assert len(recs) == 12 and table(res)["rows"]["w/o tuning"]["mbpp-val"]["ac"] == 50.0

    # a second run finds every answer on disk: the solvers open, nothing is asked again
    class Refuses(Solver):
        def answer(self, problem: str, max_tokens: int | None = None) -> Answer:
            raise AssertionError("answered again")

    again = evaluate_methods(
        [("w/o tuning", None)],
        {"mbpp-val": problems},
        lambda b, i: Refuses(i),
        PassIfOdd(),
        out,
        timeout_s=1,
        samples=4,
    )
    assert again == res
