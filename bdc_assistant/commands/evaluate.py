"""`bdc eval`: run the local solver over a dataset, judge every answer in the sandbox, report PR/AC/pass@1.

Results go to ``<data dir>/evals/<dataset>/`` (or ``--out``): ``results.jsonl`` gets one record per problem
as soon as it is judged, so running the same command again resumes after the last finished problem
(``--fresh`` starts over). ``summary.json`` holds both the ``strict`` and the ``paper_compat`` numbers with
their denominators and the counts of dropped and errored problems.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dataset",
        required=True,
        help="humaneval | mbpp | mbpp-val | mbpp-train | codecontests | codecontests-val | codecontests-train "
        "| codecontests:PATH | apps:PATH",
    )
    p.add_argument("--limit", type=int, default=None, help="only the first N problems")
    p.add_argument("--backend", default=None, help="llamacpp | torch (default: settings)")
    p.add_argument(
        "--bundle", default=None, help="solver bundle dir, 'none' or 'shipped' (default: the active one)"
    )
    p.add_argument("--out", type=Path, default=None, help="results dir (default: <data>/evals/<dataset>)")
    p.add_argument("--fresh", action="store_true", help="discard earlier results in the results dir")
    p.add_argument(
        "--timeout", type=float, default=None, help="seconds per test (default: sandbox.timeout_s)"
    )
    p.add_argument("--max-tokens", type=int, default=None, help="max code tokens per answer")
    p.add_argument(
        "--tie-break",
        choices=["first", "last"],
        default="first",
        help="paper_compat: which of equally good candidates is final",
    )
    p.add_argument(
        "--call-based-zero",
        action="store_true",
        help="paper_compat quirk: score call-based problems 0 like the BDC/RethinkMCTS executor",
    )
    p.add_argument(
        "--keep-lt2",
        action="store_true",
        help="paper_compat: keep problems with fewer than 2 tests (BDC drops them)",
    )
    p.add_argument(
        "--program-timeout",
        type=float,
        default=None,
        help="paper_compat quirk: a program whose tests take longer in total scores 0 (reference: 10)",
    )
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")


def default_out_dir(dataset: str) -> Path:
    from ..paths import app_paths

    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", dataset).strip("_")[:80] or "dataset"
    return app_paths().data_dir / "evals" / slug


class _Progress:
    """A progress bar on stderr (tqdm when present), with the running pass count."""

    def __init__(self, total: int) -> None:
        self.passed = 0
        try:
            from tqdm import tqdm

            self.bar: Any = tqdm(total=total, file=sys.stderr, unit="problem", dynamic_ncols=True)
        except ImportError:  # pragma: no cover
            self.bar = None

    def __call__(self, done: int, total: int, record: dict[str, Any]) -> None:
        cands = record.get("candidates") or []
        if cands and cands[-1]["scoring"] and all(s == "pass" for s in cands[-1]["scoring"]):
            self.passed += 1
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(passed=f"{self.passed}/{done}")
        elif done == total or done % 10 == 0:
            print(f"{done}/{total} problems, {self.passed} passed", file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run(args: argparse.Namespace) -> int:
    from ..config import load_settings
    from ..errors import DatasetError
    from ..evaluation.datasets import load_dataset
    from ..evaluation.metrics import CompatFlags
    from ..evaluation.runner import EvalRun, evaluate
    from ..sandbox import sandbox_from_settings

    if args.limit is not None and args.limit < 0:
        raise DatasetError("--limit must be zero or positive.")
    problems = load_dataset(args.dataset, args.limit)
    out_dir = args.out or default_out_dir(args.dataset)
    if args.fresh:  # only our own files: --out may point at a directory holding other things
        for name in ("results.jsonl", "summary.json", "meta.json"):
            (out_dir / name).unlink(missing_ok=True)
    settings = load_settings()
    from ..solver.session import open_solver

    flags = CompatFlags(
        tie_break=args.tie_break,
        call_based_zero=args.call_based_zero,
        drop_lt2_tests=not args.keep_lt2,
        program_timeout_s=args.program_timeout,
    )
    progress = _Progress(len(problems))
    solver = open_solver(settings, backend=args.backend, bundle=args.bundle)
    try:
        with sandbox_from_settings(settings) as sandbox:
            summary = evaluate(
                problems,
                solver,
                sandbox,
                EvalRun(out_dir, args.dataset),
                timeout_s=args.timeout,
                max_tokens=args.max_tokens,
                flags=flags,
                progress=progress,
            )
    finally:
        progress.close()
        solver.close()
    print_summary(summary, as_json=args.json)
    return 0


def print_summary(summary: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary))
        return
    s, c = summary["strict"], summary["paper_compat"]
    print(f"dataset {summary['dataset']}: {summary['problems']} problems")
    print(
        f"pass@1 {s['pass_at_1']:.2f}%  95% CI {summary['pass_at_1_ci95'][0]:.1f}–{summary['pass_at_1_ci95'][1]:.1f}"
        f"   (strict: {s['denominator']} scored, {s['dropped']} dropped, "
        f"{s['errored']} errored)"
    )
    print(f"strict        PR {s['pr']:.2f}  AC {s['ac']:.2f}")
    print(
        f"paper_compat  PR {c['pr']:.2f}  AC {c['ac']:.2f}   ({c['denominator']} scored, {c['dropped']} "
        f"dropped, {c['errored']} errored)"
    )
    print(f"tokens {summary['tokens']}   solver seconds {summary['seconds']:.1f}")
    print(f"results {summary['results']}")
