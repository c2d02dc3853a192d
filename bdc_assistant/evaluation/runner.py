"""The evaluation loop behind ``bdc eval``: solve each problem once, judge it in the sandbox, append one
JSONL record per problem (so an interrupted run resumes where it stopped), then summarize.

Prompting for call-based sets (HumanEval, MBPP): the solver gets the prompt (signature + docstring). If the
code it returns does not define the entry point at top level, the prompt is prepended (the answer is then
treated as a completion of the prompt, like HumanEval's own ``prompt + completion`` protocol).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..errors import BdcError, DatasetError
from ..pysource import defines
from ..types import Problem, TestCase
from .metrics import CompatFlags, Summary, compute, wilson_ci95
from .problem_text import solver_text


class SolverLike(Protocol):
    def answer(self, problem: str, max_tokens: int | None = None) -> Any: ...


class SandboxLike(Protocol):
    def run_tests(
        self,
        code: str,
        tests: Sequence[TestCase],
        *,
        timeout_s: float | None = None,
        checker: str | None = None,
    ) -> list[Any]: ...


def prepare_code(problem: Problem, code: str) -> str:
    if (
        problem.kind == "call"
        and problem.entry_point
        and problem.starter_code
        and not defines(code, problem.entry_point)
    ):
        return problem.starter_code + code
    return code


def judge(
    sandbox: SandboxLike, problem: Problem, code: str, timeout_s: float | None = None
) -> dict[str, Any]:
    """Run ``code`` on all the problem's tests; public / private / scoring verdict lists for the record."""
    tests = list(problem.public_tests) + list(problem.private_tests)
    t0 = time.monotonic()
    verdicts = sandbox.run_tests(code, tests, timeout_s=timeout_s, checker=problem.checker) if tests else []
    took = time.monotonic() - t0
    statuses = [str(v.status) for v in verdicts]
    n_pub = len(problem.public_tests)
    first_fail = next((v for v in verdicts if not v.passed), None)
    return {
        "public": statuses[:n_pub],
        "private": statuses[n_pub:],
        "scoring": [s for s, t in zip(statuses, tests, strict=True) if t.origin == "dataset"],
        "seconds": round(took, 3),
        "first_failure": None
        if first_fail is None
        else {
            "status": str(first_fail.status),
            "detail": first_fail.detail[:500],
            "stderr": first_fail.stderr[-500:],
        },
    }


@dataclass
class EvalRun:
    """One evaluation directory: ``results.jsonl`` (one record per problem), ``meta.json``, ``summary.json``."""

    out_dir: Path
    dataset: str

    @property
    def results_file(self) -> Path:
        return self.out_dir / "results.jsonl"

    def open(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        meta_file = self.out_dir / "meta.json"
        if meta_file.exists():
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
            if meta.get("dataset") != self.dataset:
                raise DatasetError(
                    f"{self.out_dir} holds results for '{meta.get('dataset')}', not '{self.dataset}'; "
                    "use another --out directory or --fresh."
                )
        else:
            meta_file.write_text(json.dumps({"dataset": self.dataset}) + "\n", encoding="utf-8")

    def done(self) -> dict[str, dict[str, Any]]:
        """Records already written; a torn last line (killed mid-write) is dropped and rewritten."""
        if not self.results_file.exists():
            return {}
        records: dict[str, dict[str, Any]] = {}
        good_lines = []
        for line in self.results_file.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            records[str(rec["id"])] = rec
            good_lines.append(line)
        self.results_file.write_text("".join(ln + "\n" for ln in good_lines), encoding="utf-8")
        return records

    def append(self, record: dict[str, Any]) -> None:
        with self.results_file.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
            fh.flush()


def _forget_prompt_cache(solver: SolverLike) -> None:
    """Start every problem from an empty KV cache, so its answer depends on that problem alone.

    The app keeps the shared chat prefix cached between answers (faster first tokens), but a prefix computed
    in another batch can change a greedy answer's last bits; a resumed run and the rows of a table must see
    exactly the answers a fresh run would. Solvers without a cache have no such method.
    """
    forget = getattr(solver, "forget_prompt_cache", None)
    if callable(forget):
        forget()


def evaluate(
    problems: Sequence[Problem],
    solver: SolverLike,
    sandbox: SandboxLike,
    run: EvalRun,
    *,
    timeout_s: float | None = None,
    max_tokens: int | None = None,
    flags: CompatFlags | None = None,
    progress: Callable[[int, int, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Solve and judge every problem not already in ``run``; return the summary (also written to disk)."""
    run.open()
    done = run.done()
    records = []
    total = len(problems)
    for i, problem in enumerate(problems):
        if problem.id in done:
            records.append(done[problem.id])
            if progress:
                progress(i + 1, total, done[problem.id])
            continue
        record: dict[str, Any] = {
            "id": problem.id,
            "source": problem.source,
            "kind": problem.kind,
            "error": None,
        }
        try:
            _forget_prompt_cache(solver)
            answer = solver.answer(solver_text(problem), max_tokens=max_tokens)
            code = prepare_code(problem, answer.code)
            record.update(code=code, tokens=int(answer.tokens), seconds=round(float(answer.seconds), 3))
            record["candidates"] = [judge(sandbox, problem, code, timeout_s)]
        except BdcError as exc:
            if isinstance(exc, DatasetError):
                raise
            record["error"] = str(exc)
        except Exception as exc:
            record["error"] = f"{type(exc).__name__}: {exc}"
        run.append(record)
        records.append(record)
        if progress:
            progress(i + 1, total, record)
    return summarize(records, run, flags)


def summarize(
    records: Sequence[dict[str, Any]], run: EvalRun | None = None, flags: CompatFlags | None = None
) -> dict[str, Any]:
    strict: Summary = compute(records, "strict")
    compat: Summary = compute(records, "paper_compat", flags)
    summary = {
        "dataset": run.dataset if run else None,
        "problems": len(records),
        "pass_at_1": round(strict.pass_at_1, 3),
        "pass_at_1_ci95": wilson_ci95(round(strict.pass_at_1 * strict.denominator / 100), strict.denominator),
        "strict": strict.as_dict(),
        "paper_compat": compat.as_dict(),
        "tokens": strict.tokens,
        "seconds": strict.seconds,
        "results": str(run.results_file) if run else None,
    }
    if run:
        (run.out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary
