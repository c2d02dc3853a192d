"""Does repairing on the stated examples help? ``solver.repair_rounds`` = N vs 0, on the fixed validation split.

Runs the local solver (default settings, greedy, the configured base) with repair on over ``mbpp-val`` and
``codecontests-val`` and judges every final answer in the sandbox on all the problem's tests. The repair-off
arm costs no second run: decoding is greedy, so the first answer of the repair run *is* the answer with repair
off — the solver records it (``examples.first_code``) whenever a repair replaced it, and it is judged the same
way. Prints pass@1 with its 95 % Wilson interval per arm and set, the paired-bootstrap 95 % interval of
on − off, how often a repair ran / changed the answer / fixed or broke it, and the tokens it cost.
Resumable (one results dir per set under ``--out``). HumanEval is never used here.

    python bench/repair.py --json [--sets mbpp-val,codecontests-val] [--limits codecontests-val=30]
        [--rounds 1] [--out DIR] [--save bench/results/repair_qwen05b.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bdc_assistant.config import load_settings
from bdc_assistant.evaluation.datasets import load_dataset
from bdc_assistant.evaluation.metrics import paired_bootstrap_ci95, record_passed, wilson_ci95
from bdc_assistant.evaluation.problem_text import solver_text
from bdc_assistant.evaluation.runner import EvalRun, evaluate, judge, prepare_code
from bdc_assistant.sandbox import sandbox_from_settings
from bdc_assistant.solver.session import open_solver


class Recording:
    """The solver, with each answer's ``examples`` record appended to ``examples.jsonl`` by problem id."""

    def __init__(self, solver: Any, ids: dict[str, str], path: Path) -> None:
        self.solver, self.ids, self.path = solver, ids, path

    def answer(self, problem: str, max_tokens: int | None = None) -> Any:
        ans = self.solver.answer(problem, max_tokens=max_tokens)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps({"id": self.ids[problem], "examples": ans.extra.get("examples")}) + "\n")
        return ans


def _examples(path: Path) -> dict[str, dict[str, Any]]:
    if not path.exists():
        return {}
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        out[rec["id"]] = rec.get("examples") or {}
    return out


def _arm(outcomes: list[bool], n: int) -> dict[str, Any]:
    k = sum(outcomes)
    return {"solved": k, "pass_at_1": round(100 * k / n, 2), "ci95": wilson_ci95(k, n)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", default="mbpp-val,codecontests-val")
    ap.add_argument("--limit", type=int, default=None, help="first N problems of every set")
    ap.add_argument("--limits", default="", help="per-set limits, e.g. codecontests-val=30")
    ap.add_argument(
        "--rounds", type=int, default=1, help="solver.repair_rounds of the repair arm (default 1)"
    )
    ap.add_argument("--out", type=Path, default=Path("out/repair"))
    ap.add_argument("--bundle", default="none", help="bundle (default: the plain base)")
    ap.add_argument("--save", type=Path, help="also write the report here (e.g. bench/results/repair_x.json)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error("--rounds must be at least 1 (0 is the arm it is compared with)")

    limits = {k: int(v) for k, v in (kv.split("=") for kv in args.limits.split(",") if kv)}
    settings = load_settings()
    settings = settings.model_copy(
        update={"solver": settings.solver.model_copy(update={"repair_rounds": args.rounds})}
    )
    solver = open_solver(settings, bundle=args.bundle)
    t0 = time.time()
    report: dict[str, Any] = {
        "model": solver.generator.model_id,
        "style": solver.style,
        "rounds": args.rounds,
        "plan": solver.plan_mode(),
        "sets": {},
    }
    pooled: dict[str, list[bool]] = {"off": [], "on": []}
    try:
        with sandbox_from_settings(settings) as sandbox:
            for name in args.sets.split(","):
                problems = load_dataset(name, limits.get(name, args.limit))
                run = EvalRun(args.out / f"{name}-repair-{args.rounds}", name)
                side = run.out_dir / "examples.jsonl"
                run.open()
                ids = {solver_text(p): p.id for p in problems}
                summary = evaluate(problems, Recording(solver, ids, side), sandbox, run)
                records = run.done()
                examples = _examples(side)
                on, off = [], []
                ran = changed = fixed = broke = 0
                for p in problems:
                    rec, ex = records[p.id], examples.get(p.id, {})
                    passed = bool(record_passed(rec))
                    on.append(passed)
                    if len(ex.get("per_round", [])) > 1:
                        ran += 1
                    first = ex.get("first_code")
                    if first is None:
                        off.append(passed)
                        continue
                    changed += 1
                    verdicts = judge(sandbox, p, prepare_code(p, first))
                    first_rec = {**rec, "code": prepare_code(p, first), "candidates": [verdicts]}
                    first_passed = bool(record_passed(first_rec))
                    off.append(first_passed)
                    fixed += passed and not first_passed
                    broke += first_passed and not passed
                n = len(problems)
                report["sets"][name] = {
                    "problems": n,
                    "with_examples": sum(1 for p in problems if examples.get(p.id, {}).get("total")),
                    "repair_off": _arm(off, n),
                    "repair_on": _arm(on, n),
                    "on_minus_off_ci95": paired_bootstrap_ci95(off, on),
                    "repairs_run": ran,
                    "answers_changed": changed,
                    "fixed": fixed,
                    "broke": broke,
                    "tokens_on": summary["tokens"],
                    "seconds_on": summary["seconds"],
                }
                pooled["off"] += off
                pooled["on"] += on
                print(f"{name}: off {sum(off)}/{n} · on {sum(on)}/{n}", file=sys.stderr)
    finally:
        solver.close()
    report["total_solved"] = {arm: sum(v) for arm, v in pooled.items()}
    report["on_minus_off_pooled_ci95"] = paired_bootstrap_ci95(pooled["off"], pooled["on"])
    report["wall_s"] = round(time.time() - t0, 1)
    from bdc_assistant.machine import cpu_name

    report["machine"] = {"cpu": cpu_name()}
    text = json.dumps(report) if args.json else json.dumps(report, indent=2)
    print(text)
    if args.save:
        args.save.parent.mkdir(parents=True, exist_ok=True)
        args.save.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
