"""The ``evaluate`` stage: PR and AC of every method on held-out problems, as the paper's Table 2.

Every row runs through the *app*: ``open_solver(settings, backend, bundle)`` with the method's bundle
(none for the untuned base, one-expert static bundles for SFT-all / per-cluster SFT / TIES / DARE, the
DisenLoRA bundle for the last row), the solver's own two-stage prompts, and the evaluation harness of
``bdc eval`` (``bdc_assistant.evaluation.runner.evaluate``: sandboxed judging, resumable JSONL records,
``strict`` and ``paper_compat`` metrics). So the table measures what a user of ``bdc ask`` would get.
Problems whose id was used for training are excluded (and counted), so "held-out" holds even when a
benchmark also fed the bootstrap.

The table shows the ``strict`` mode (all tests scored, call-based problems supported; the paper's mode
drops problems with fewer than two tests, i.e. all of HumanEval); both modes are in the JSON.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bdc_assistant.types import Problem

# (row label, bundle dir or None = the untuned base)
Method = tuple[str, Path | None]


def load_problems(name: str, limit: int) -> list[Problem]:
    from bdc_assistant.evaluation.datasets import load_dataset

    return list(load_dataset(name, limit or None))


def group_of(dataset: str, problem: Problem) -> str:
    """Column group: the dataset, with CodeContests split like the paper (easy 0–10, hard 11–25)."""
    if dataset == "codecontests" and problem.difficulty is not None:
        return "codecontests-easy" if problem.difficulty <= 10 else "codecontests-hard"
    return dataset


def slug(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-") or "method"


def evaluate_methods(
    methods: list[Method],
    datasets: dict[str, list[Problem]],
    open_solver: Callable[[Path | None], Any],
    sandbox: Any,
    out_dir: Path,
    *,
    timeout_s: float,
    max_tokens: int | None = None,
    row_key: Callable[[Path | None], str] | None = None,
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """{method: {group: [harness records]}}. Each (method, dataset) is one resumable harness run, in
    ``out_dir/<method slug>[-<row_key(bundle)>]/<dataset>``."""
    from tqdm import tqdm

    from bdc_assistant.evaluation.runner import EvalRun, evaluate

    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    total = len(methods) * sum(len(p) for p in datasets.values())
    bar = tqdm(total=total, desc="evaluate", unit="answer", disable=os.environ.get("BDC_NO_PROGRESS") == "1")
    for label, bundle in methods:
        solver = open_solver(bundle)
        try:
            groups: dict[str, list[dict[str, Any]]] = {}
            for dname, problems in datasets.items():
                row = slug(label) + (f"-{row_key(bundle)}" if row_key else "")
                run = EvalRun(out_dir / row / dname, dname)
                evaluate(
                    problems,
                    solver,
                    sandbox,
                    run,
                    timeout_s=timeout_s,
                    max_tokens=max_tokens,
                    progress=lambda *_: bar.update(1),
                )
                by_id = run.done()
                for prob in problems:
                    groups.setdefault(group_of(dname, prob), []).append(by_id[prob.id])
            results[label] = groups
        finally:
            solver.close()
        bar.set_postfix(method=label)
    bar.close()
    return results


def table(results: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, Any]:
    """{"columns": [...groups, "overall"], "rows": {method: {group: {pr, ac, n, paper_compat}}}}."""
    from bdc_assistant.evaluation.metrics import compute

    groups: list[str] = []
    for per in results.values():
        for g in per:
            if g not in groups:
                groups.append(g)
    rows: dict[str, dict[str, Any]] = {}
    for method, per in results.items():
        row = {}
        everything = [rec for g in groups for rec in per.get(g, [])]
        for g in [*groups, "overall"]:
            recs = everything if g == "overall" else per.get(g, [])
            if not recs:
                continue
            strict = compute(recs, "strict")
            compat = compute(recs, "paper_compat")
            row[g] = {
                "pr": round(strict.pr, 2),
                "ac": round(strict.ac, 2),
                "n": strict.denominator,
                "errored": strict.errored,
                "paper_compat": {
                    "pr": round(compat.pr, 2),
                    "ac": round(compat.ac, 2),
                    "n": compat.denominator,
                    "dropped": compat.dropped,
                },
            }
        rows[method] = row
    return {"columns": [*groups, "overall"], "rows": rows, "mode": "strict"}


def markdown(tab: dict[str, Any], title: str) -> str:
    cols = tab["columns"]
    n_of: dict[str, int] = {}
    for row in tab["rows"].values():
        for c in cols:
            if c in row:
                n_of[c] = row[c]["n"]
    head = "| Method | " + " | ".join(f"{c} ({n_of.get(c, 0)}) PR | AC" for c in cols) + " |"
    sep = "|---|" + "---|---|" * len(cols)
    lines = [f"### {title}", "", head, sep]
    for method, row in tab["rows"].items():
        cells: list[str] = []
        for c in cols:
            cell = row.get(c)
            cells += [f"{cell['pr']:.2f}", f"{cell['ac']:.2f}"] if cell else ["–", "–"]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "PR = mean % of tests passed per problem, AC = % of problems passing every test "
        "(strict mode: all tests, call-based problems scored).",
    ]
    return "\n".join(lines) + "\n"
