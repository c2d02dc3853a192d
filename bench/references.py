"""Reference solutions through the sandbox: data and judge quality, not model quality.

* HumanEval (164) and MBPP (shared/data, 170): canonical solutions in ``strict`` mode (the dataset's
  ``check()``); every failure is listed with its verdict and detail.
* CodeContests (shared/data, 240): the reference solution on all tests (strict) and on the private half
  (paper_compat), with the registered checkers, and also with plain comparison only. Every failing problem is
  classified:
    - ``interactive``: needs an interactor, cannot be judged on stdin/stdout;
    - ``several valid answers, no checker``: the statement accepts any valid answer and no checker exists;
    - ``slow reference``: only timeouts (``passes_at_slow_factor`` says whether it passes with
      ``--slow-factor`` × the time);
    - ``wrong reference``: anything else (wrong answer or crash on a problem with a unique answer, or
      rejected by a checker written from the statement).

    python bench/references.py --json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bdc_assistant.evaluation.cc_checkers import INTERACTIVE, accepts_any_answer
from bdc_assistant.evaluation.datasets import load_dataset
from bdc_assistant.evaluation.metrics import compute
from bdc_assistant.sandbox import Sandbox, SandboxLimits
from bdc_assistant.types import Problem, Status


def call_based(sb: Sandbox, name: str) -> dict[str, Any]:
    problems = load_dataset(name)
    failures = []
    for p in problems:
        scoring = [t for t in p.all_tests if t.origin == "dataset"]
        verdicts = sb.run_tests(p.reference_solution or "", scoring)
        bad = [v for v in verdicts if not v.passed]
        if bad:
            failures.append({"id": p.id, "status": str(bad[0].status), "detail": bad[0].detail[:300]})
    passed = len(problems) - len(failures)
    return {
        "total": len(problems),
        "passed": passed,
        "rate": round(100 * passed / len(problems), 2),
        "failures": failures,
    }


def _record(p: Problem, statuses: list[str]) -> dict[str, Any]:
    n_pub = len(p.public_tests)
    return {
        "id": p.id,
        "kind": p.kind,
        "candidates": [{"public": statuses[:n_pub], "private": statuses[n_pub:]}],
    }


def codecontests(sb: Sandbox, timeout_s: float, slow_factor: float, limit: int | None) -> dict[str, Any]:
    problems = load_dataset("codecontests", limit)
    with_checkers, plain, failures = [], [], []
    n_tests = 0
    for p in problems:
        tests = list(p.all_tests)
        n_tests += len(tests)
        verdicts = sb.run_tests(p.reference_solution or "", tests, timeout_s=timeout_s, checker=p.checker)
        statuses = [str(v.status) for v in verdicts]
        with_checkers.append(_record(p, statuses))
        if p.checker:
            plain_v = sb.run_tests(p.reference_solution or "", tests, timeout_s=timeout_s)
            plain.append(_record(p, [str(v.status) for v in plain_v]))
        else:
            plain.append(with_checkers[-1])
        bad = [(i, v) for i, v in enumerate(verdicts) if not v.passed]
        if not bad:
            continue
        kinds = Counter(str(v.status) for _, v in bad)
        passes_slow = False
        if p.id in INTERACTIVE:
            category = "interactive"
        elif accepts_any_answer(p.id, p.statement) and not p.checker:
            category = "several valid answers, no checker"
        elif all(v.status is Status.TIMEOUT for _, v in bad):
            retry = [
                sb.run_tests(
                    p.reference_solution or "",
                    [tests[i]],
                    timeout_s=timeout_s * slow_factor,
                    checker=p.checker,
                )[0]
                for i, _ in bad
            ]
            category = "slow reference"
            passes_slow = all(v.passed for v in retry)
        else:
            category = "wrong reference"
        failures.append(
            {
                "id": p.id,
                "category": category,
                "checker": p.checker,
                "failed_tests": len(bad),
                "passes_at_slow_factor": passes_slow if category == "slow reference" else None,
                "tests": len(tests),
                "statuses": dict(kinds),
                "detail": bad[0][1].detail[:200],
            }
        )
    strict = compute(with_checkers, "strict")
    compat = compute(with_checkers, "paper_compat")
    plain_strict = compute(plain, "strict")
    plain_compat = compute(plain, "paper_compat")
    multi = [p.id for p in problems if accepts_any_answer(p.id, p.statement)]
    return {
        "problems": len(problems),
        "tests": n_tests,
        "strict": {"pr": round(strict.pr, 2), "ac": round(strict.ac, 2), "denominator": strict.denominator},
        "paper_compat": {
            "pr": round(compat.pr, 2),
            "ac": round(compat.ac, 2),
            "denominator": compat.denominator,
            "dropped": compat.dropped,
        },
        "plain_comparison": {
            "strict_pr": round(plain_strict.pr, 2),
            "strict_ac": round(plain_strict.ac, 2),
            "paper_compat_pr": round(plain_compat.pr, 2),
            "paper_compat_ac": round(plain_compat.ac, 2),
        },
        "accepts_any_answer": len(multi),
        "with_checker": sum(1 for p in problems if p.checker),
        "failures_by_category": dict(Counter(f["category"] for f in failures)),
        "failures": failures,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--timeout", type=float, default=4.0, help="seconds per CodeContests test")
    ap.add_argument("--slow-factor", type=float, default=3.0)
    ap.add_argument("--limit", type=int, default=None, help="only the first N CodeContests problems")
    ap.add_argument("--workers", type=int, default=0)
    args = ap.parse_args()
    t0 = time.perf_counter()
    with Sandbox(workers=args.workers, limits=SandboxLimits(timeout_s=args.timeout)) as sb:
        out = {
            "humaneval": call_based(sb, "humaneval"),
            "mbpp": call_based(sb, "mbpp"),
            "codecontests": codecontests(sb, args.timeout, args.slow_factor, args.limit),
        }
    out["seconds"] = round(time.perf_counter() - t0, 1)
    if args.json:
        print(json.dumps(out))
    else:
        print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
