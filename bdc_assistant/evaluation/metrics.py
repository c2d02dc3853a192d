"""PR and AC, in the paper's protocol (``paper_compat``) and in ours (``strict``).

Input: per-problem result records (the JSONL ``bdc eval`` writes, or hand-made files). A record is::

    {"id": "...", "kind": "stdio"|"call", "error": null | "why",
     "candidates": [{"public": [r, ...], "private": [r, ...]}, ...]}   # or top-level "public"/"private"

where each test result ``r`` is a verdict status string ("pass", "wrong", "runtime_error", "timeout",
"memory", "compile_error"), a bool, or an APPS-style int (1/True pass, 0/False wrong, -1 runtime error or
timeout, -2 compile error). A test passes iff ``r`` is "pass", True, or a positive number.

``paper_compat`` (PG-TD → RethinkMCTS → BDC ``evaluate.py``):
* the tests were split first ``n // 2`` public, rest private (the loaders do this);
* the final program is the candidate with the best public pass rate; ties go to the first candidate
  (``tie_break="first"``, the in-run ``np.argmax``) or the last (``"last"``, what the offline
  ``np.argsort(...)[::-1]`` effectively gives on small arrays);
* PR = 100 × mean over problems of the final program's private pass fraction; AC = 100 × share of problems
  whose final program passes every private test;
* quirks as explicit flags: ``drop_lt2_tests`` (BDC drops problems with fewer than 2 tests: they leave the
  denominator and are counted as dropped), ``call_based_zero`` (BDC/RethinkMCTS score every call-based
  problem 0 because their executor hits ``assert 0``), ``program_timeout_s`` (their global 10 s
  ``p.join``: a program whose tests took longer in total scores 0 on every test).
Errored problems (the solver failed) stay in the denominator with 0 and are counted separately.

``strict``: the final program (the last candidate, i.e. the answer) is scored on all scoring tests
(public + private), call-based problems fully supported. pass@1 is the share of problems whose single
answer passes all its scoring tests (= AC with one sample).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Mode = Literal["paper_compat", "strict"]


@dataclass(frozen=True)
class CompatFlags:
    tie_break: Literal["first", "last"] = "first"
    drop_lt2_tests: bool = True
    call_based_zero: bool = False
    program_timeout_s: float | None = None


@dataclass(frozen=True)
class Summary:
    mode: str
    pr: float
    ac: float
    pass_at_1: float
    denominator: int
    n_records: int
    dropped: int
    errored: int
    dropped_ids: tuple[str, ...] = ()
    errored_ids: tuple[str, ...] = ()
    tokens: int = 0
    seconds: float = 0.0
    flags: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["pr"], d["ac"], d["pass_at_1"] = round(self.pr, 3), round(self.ac, 3), round(self.pass_at_1, 3)
        d["dropped_ids"], d["errored_ids"] = list(self.dropped_ids), list(self.errored_ids)
        return d

    def line(self) -> str:
        return (
            f"{self.mode}: PR {self.pr:.2f}  AC {self.ac:.2f}  pass@1 {self.pass_at_1:.2f}  over "
            f"{self.denominator} problems ({self.dropped} dropped, {self.errored} errored)"
        )


def passed(result: Any) -> bool:
    if isinstance(result, bool):
        return result
    if isinstance(result, int | float):
        return result > 0
    return str(result) == "pass"


def _fraction(results: Sequence[Any]) -> float:
    return sum(passed(r) for r in results) / len(results) if results else 0.0


def _candidates(record: dict[str, Any]) -> list[dict[str, Any]]:
    cands = record.get("candidates")
    if cands:
        return list(cands)
    if "public" in record or "private" in record:
        return [
            {
                "public": record.get("public", []),
                "private": record.get("private", []),
                "seconds": record.get("test_seconds"),
            }
        ]
    return []


def select_final(cands: list[dict[str, Any]], tie_break: str) -> dict[str, Any]:
    """The candidate with the best public pass rate (ties: first or last)."""
    best_i, best = 0, -1.0
    for i, c in enumerate(cands):
        score = _fraction(c.get("public", []))
        if score > best or (tie_break == "last" and score == best):
            best_i, best = i, score
    return cands[best_i]


def compute(
    records: Iterable[dict[str, Any]], mode: Mode = "strict", flags: CompatFlags | None = None
) -> Summary:
    flags = flags or CompatFlags()
    prs: list[float] = []
    dropped: list[str] = []
    errored: list[str] = []
    tokens, seconds, n = 0, 0.0, 0
    for rec in records:
        n += 1
        pid = str(rec.get("id", n))
        tokens += int(rec.get("tokens") or 0)
        seconds += float(rec.get("seconds") or 0.0)
        cands = _candidates(rec)
        if rec.get("error") or not cands:
            errored.append(pid)
            prs.append(0.0)
            continue
        if mode == "paper_compat":
            n_tests = len(cands[0].get("public", [])) + len(cands[0].get("private", []))
            if flags.drop_lt2_tests and n_tests < 2:
                dropped.append(pid)
                continue
            final = select_final(cands, flags.tie_break)
            private = list(final.get("private", []))
            if flags.call_based_zero and rec.get("kind") == "call":
                private = [False] * len(private)
            took = final.get("seconds")
            if flags.program_timeout_s is not None and took is not None and took > flags.program_timeout_s:
                private = [False] * len(private)
            if not private:
                dropped.append(pid)
                continue
            prs.append(_fraction(private))
        else:
            final = cands[-1]
            scoring = list(final.get("public", [])) + list(final.get("private", []))
            if "scoring" in final:
                scoring = list(final["scoring"])
            if not scoring:
                dropped.append(pid)
                continue
            prs.append(_fraction(scoring))
    denom = len(prs)
    pr = 100.0 * sum(prs) / denom if denom else 0.0
    ac = 100.0 * sum(1 for p in prs if p == 1.0) / denom if denom else 0.0
    return Summary(
        mode=mode,
        pr=pr,
        ac=ac,
        pass_at_1=ac,
        denominator=denom,
        n_records=n,
        dropped=len(dropped),
        errored=len(errored),
        dropped_ids=tuple(dropped),
        errored_ids=tuple(errored),
        tokens=tokens,
        seconds=round(seconds, 3),
        flags=asdict(flags) if mode == "paper_compat" else {},
    )


def record_passed(record: dict[str, Any]) -> bool | None:
    """Did one harness record's answer pass all its scoring tests (strict mode)? None when it has none.
    The unit of every paired comparison (Table 2's rows against the base, the bench scripts' modes)."""
    s = compute([record], "strict")
    return None if s.denominator == 0 else s.ac == 100.0


def wilson_ci95(successes: int, n: int) -> tuple[float, float]:
    """95 % Wilson score interval of a pass rate, in percent (sound at 0 and n, unlike the normal one)."""
    if n <= 0:
        return (0.0, 0.0)
    z = 1.959963984540054
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / (1 + z * z / n)
    return (round(100 * max(0.0, centre - half), 2), round(100 * min(1.0, centre + half), 2))


def _bootstrap_ci95(
    n: int, statistic: Callable[[list[int]], float], rounds: int, seed: int
) -> tuple[float, float]:
    """Percentile 95 % interval of ``statistic`` over ``rounds`` resamples (with replacement) of ``n`` indices."""
    import random

    rng = random.Random(seed)
    values = sorted(statistic([rng.randrange(n) for _ in range(n)]) for _ in range(rounds))
    return (round(values[int(0.025 * rounds)], 2), round(values[int(0.975 * rounds) - 1], 2))


def paired_bootstrap_ci95(
    a: Sequence[float], b: Sequence[float], rounds: int = 10_000, seed: int = 0
) -> tuple[float, float]:
    """95 % paired-bootstrap interval of pass-rate(b) − pass-rate(a), in points, over the same problems.
    Outcomes are solved-or-not (bools) or, with several samples per problem, each problem's pass fraction."""
    if len(a) != len(b) or not a:
        raise ValueError("paired bootstrap needs two equally long, non-empty outcome lists")
    n = len(a)
    return _bootstrap_ci95(
        n, lambda idx: 100.0 * sum(float(b[i]) - float(a[i]) for i in idx) / n, rounds, seed
    )


def bootstrap_mean_ci95(rates: Sequence[float], rounds: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """95 % bootstrap interval of the mean of per-problem rates in [0, 1], in percent (the paper's PR: the
    mean fraction of private tests passed, which has no closed-form interval like AC's Wilson one)."""
    if not rates:
        return (0.0, 0.0)
    n = len(rates)
    return _bootstrap_ci95(n, lambda idx: 100.0 * sum(rates[i] for i in idx) / n, rounds, seed)
