"""The ``evaluate`` stage: PR and AC of every method on held-out problems, as the paper's Table 2.

Every row runs through the *app*: ``open_solver(settings, backend, bundle)`` with the method's bundle
(none for the untuned base, one-expert static bundles for SFT-all / per-cluster SFT / TIES / DARE, the TWIN
bundle — a router over shared + exclusive parts, :mod:`.twin` — and the DisenLoRA bundle for the last row), the solver's own two-stage prompts, and the evaluation harness of
``bdc eval`` (``bdc_assistant.evaluation.runner.evaluate``: sandboxed judging, resumable JSONL records,
``strict`` and ``paper_compat`` metrics). So the table measures what a user of ``bdc ask`` would get.
Problems whose id was used for training are excluded (and counted), so "held-out" holds even when a
benchmark also fed the bootstrap.

The report shows the ``strict`` mode (all tests scored, call-based problems supported; every row with the
paired-bootstrap CI of its difference from the base) and the paper's private-only mode side by side (it drops
problems with fewer than two tests: 95 of HumanEval's 164); both are in the JSON. Below the tables, the
report answers the issue's question in one sentence — does DisenLoRA beat the base and every static row on
each set? (:mod:`.verdict`) — and measures whether the gates depend on the input at all (:mod:`.routing`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bdc_assistant.errors import DatasetError
from bdc_assistant.evaluation.datasets import codecontests_band
from bdc_assistant.types import Problem

from . import artifacts as art
from . import routing as routing_mod
from . import verdict as verdict_mod

if TYPE_CHECKING:
    from bdc_assistant.config import Settings

    from .modeling import BaseRef
    from .runner import Context

# (row label, bundle dir or None = the untuned base)
Method = tuple[str, Path | None]


BASE_ROW = "w/o tuning"


def load_problems(name: str, limit: int) -> list[Problem]:
    from bdc_assistant.evaluation.datasets import load_dataset

    return list(load_dataset(name, limit or None))


def group_of(dataset: str, problem: Problem) -> str:
    """Column group: the dataset, with CodeContests split like the paper (easy 0–10, hard 11–25)."""
    band = codecontests_band(problem.difficulty) if dataset.startswith("codecontests") else None
    return f"{dataset}-{band}" if band else dataset


def slug(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-") or "method"


def evaluate_methods(
    methods: list[Method],
    datasets: dict[str, list[Problem]],
    open_solver: Callable[[Path | None, int], Any],
    sandbox: Any,
    out_dir: Path,
    *,
    timeout_s: float,
    max_tokens: int | None = None,
    row_key: Callable[[Path | None], str] | None = None,
    samples: int = 1,
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """{method: {group: [harness records]}}. Each (method, dataset, sample) is one resumable harness run, in
    ``out_dir/<method slug>[-<row_key(bundle)>]/<dataset>[.s<sample>]`` (sample 0 has no suffix, so a run
    with one sample per problem is the directory it always was). ``open_solver(bundle, sample)``: the solver
    that writes that sample. With several samples a group lists every sample's record of a problem."""
    from tqdm import tqdm

    from bdc_assistant.evaluation.runner import EvalRun, evaluate

    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    total = len(methods) * samples * sum(len(p) for p in datasets.values())
    bar = tqdm(total=total, desc="evaluate", unit="answer", disable=os.environ.get("BDC_NO_PROGRESS") == "1")
    for label, bundle in methods:
        groups: dict[str, list[dict[str, Any]]] = {}
        row = slug(label) + (f"-{row_key(bundle)}" if row_key else "")
        for sample in range(samples):
            solver = open_solver(bundle, sample)
            try:
                for dname, problems in datasets.items():
                    run = EvalRun(out_dir / row / (dname + (f".s{sample}" if sample else "")), dname)
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
            finally:
                solver.close()
        results[label] = groups
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
    samples = samples_per_problem(results)
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
            # Every sample of a problem is one record: PR / AC over them all are the sampled means, and
            # the counts are problems (a problem's samples share its tests, so they are dropped together).
            row[g] = {
                "pr": round(strict.pr, 2),
                "ac": round(strict.ac, 2),
                "n": strict.denominator // samples,
                "errored": strict.errored,
                "paper_compat": {
                    "pr": round(compat.pr, 2),
                    "ac": round(compat.ac, 2),
                    "n": compat.denominator // samples,
                    "dropped": compat.dropped // samples,
                },
            }
        rows[method] = row
    base = results.get(BASE_ROW)
    if base is not None:
        # Paired by problem id within each set (not by position): a row that answered other problems, or the
        # same ones in another order, is either left without a difference or paired correctly.
        ids = {g: list(dict.fromkeys(rec["id"] for rec in base.get(g, []))) for g in groups}
        base_solved = [ok for g in groups for ok in verdict_mod.outcomes_by_id(base.get(g, []), ids[g]) or []]
        for method, per in results.items():
            if method == BASE_ROW or not base_solved:
                continue
            per_set = [verdict_mod.outcomes_by_id(per.get(g, []), ids[g]) for g in groups]
            if any(o is None for o in per_set):
                continue
            mine = [ok for o in per_set for ok in o or []]
            d = verdict_mod.paired_difference(base_solved, mine)
            rows[method]["overall"]["vs_base"] = {
                "ac_diff": d["diff"],
                "ci95": d["ci95"],
                "solved": verdict_mod.count(sum(mine)),
                "base_solved": d["solved"],
                "n": len(mine),
            }
    return {"columns": [*groups, "overall"], "rows": rows, "mode": "strict", "samples": samples}


def samples_per_problem(results: dict[str, dict[str, list[dict[str, Any]]]]) -> int:
    """How many answers each problem has in ``results`` (1 for a greedy table); rows must agree."""
    counts = {
        len(recs) // len({rec["id"] for rec in recs})
        for per in results.values()
        for recs in per.values()
        if recs
    }
    if len(counts) > 1:
        raise ValueError(f"rows of one table answered with different numbers of samples: {sorted(counts)}")
    return counts.pop() if counts else 1


def markdown(tab: dict[str, Any], title: str) -> str:
    """The strict table (with each row's paired difference from the base), then the paper's private-only one."""
    cols = tab["columns"]
    lines = [f"### {title}", "", *_grid(tab, strict=True), ""]
    n = tab.get("samples", 1)
    sampled = (
        f" Every cell is the mean over {n} sampled answers per problem (pass@1 as Chen et al. 2021 estimate "
        "it); ΔAC pairs each problem's pass fraction with the base's."
        if n > 1
        else ""
    )
    lines += [
        "PR = mean % of tests passed per problem, AC = % of problems passing every test "
        "(strict mode: all tests, call-based problems scored). ΔAC: points over the w/o-tuning row on the same "
        "problems, with the paired-bootstrap 95 % interval; an interval that contains 0 is not a difference."
        + sampled,
        "",
        "Paper-compatible mode (the paper's protocol: the final program is picked on the public tests and scored "
        "on the private tests only; problems with fewer than two tests are dropped):",
        "",
        *_grid(tab, strict=False),
    ]
    if any(c.startswith("humaneval") for c in cols):
        lines += [
            "",
            "HumanEval caveat: each problem has one `check` test, so PR ≡ AC there, and the paper-compatible mode "
            "drops every HumanEval problem whose docstring gives no example (95 of 164).",
        ]
    return "\n".join(lines) + "\n"


def _grid(tab: dict[str, Any], *, strict: bool) -> list[str]:
    cols = tab["columns"]
    n_of: dict[str, int] = {}
    for row in tab["rows"].values():
        for c in cols:
            if c in row:
                n_of[c] = row[c]["n"] if strict else row[c]["paper_compat"]["n"]
    head = "| Method | " + " | ".join(f"{c} ({n_of.get(c, 0)}) PR | AC" for c in cols)
    head += " | ΔAC vs base [95% CI] |" if strict else " |"
    sep = "|---|" + "---|---|" * len(cols) + ("---|" if strict else "")
    lines = [head, sep]
    for method, row in tab["rows"].items():
        cells: list[str] = []
        for c in cols:
            cell = row.get(c)
            if cell and not strict:
                cell = cell["paper_compat"]
            cells += [f"{cell['pr']:.2f}", f"{cell['ac']:.2f}"] if cell else ["–", "–"]
        if strict:
            vs = row.get("overall", {}).get("vs_base")
            cells.append(f"{vs['ac_diff']:+.2f} [{vs['ci95'][0]:+.2f}, {vs['ci95'][1]:+.2f}]" if vs else "–")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


# ---- the stage -------------------------------------------------------------------------------------------


def method_rows(ctx: Context) -> list[tuple[str, Path | None]]:
    assign = art.assignments(ctx)
    rows: list[tuple[str, Path | None]] = []
    for m in ctx.cfg.evaluate.methods:
        if m == "base":
            rows.append((BASE_ROW, None))
        elif m == "sft_all":
            p = ctx.dir("sft") / "bundles" / "sft_all"
            if p.exists():
                rows.append(("SFT on all", p))
        elif m == "sft_clusters":
            for j, name in enumerate(assign["names"]):
                rows.append((f"SFT on cluster {j} ({name})", ctx.dir("sft") / "bundles" / f"cluster_{j}"))
        elif m in ("ties", "dare", "twin"):
            p = ctx.dir("baselines") / m / "bundle"
            if p.exists():
                rows.append(({"ties": "TIES", "dare": "DARE", "twin": "TWIN"}[m], p))
        elif m == "disenlora":
            rows.append(("DisenLoRA", ctx.dir("hypernet") / "bundle"))
        else:
            raise DatasetError(f"Unknown evaluation method '{m}'.")
    return rows


def app_settings(ctx: Context, ref: BaseRef, sample: int = 0) -> Settings:
    """The app's settings every row answers with; ``sample`` is the decoding seed (sampled tables)."""
    from bdc_assistant.config import load_settings

    e = ctx.cfg.evaluate
    return load_settings(
        config_file=ctx.dir("evaluate")
        / "no-user-config.toml",  # the user's config must not change the table
        models={
            "base_gguf": ref.gguf or "",
            "base_hf_dir": ref.hf_dir,
            "encoder": ctx.cfg.cluster.encoder,
            "chat_template": ref.prompt_style,
        },
        backend={
            "name": e.backend,
            # The decoding seed is the sample's index, not run.seed: an answer then depends on exactly what
            # eval_runs_dir keys (settings, base, bundle, sample), and every run samples its base row alike.
            "seed": sample,
            "device": ctx.cfg.base.device,
            "threads": e.threads,
        },
        solver={
            "thought_tokens": e.thought_tokens,
            "max_tokens": e.max_tokens,
            "temperature": e.temperature,
            "repair_rounds": e.repair_rounds,
        },
        sandbox={"timeout_s": e.timeout_s},
    )


def eval_runs_dir(ctx: Context, ref: BaseRef) -> Path:
    """Where answers are cached: keyed by everything that changes an answer *besides the row's bundle* (the
    evaluation settings and the base), not by ``limit`` / ``datasets`` / ``methods`` / ``threads``. Each row
    then lives in a subdirectory named by its bundle's content (``row_key``), so raising the limit reuses
    finished answers and retraining the hypernetwork re-answers only the DisenLoRA row."""
    e = ctx.cfg.evaluate.model_dump(mode="json")
    for k in ("limit", "datasets", "methods", "threads", "samples"):  # samples: one directory each
        e.pop(k)
    # Settings at their old defaults leave the key as it was before they existed: caches stay valid.
    if not e.get("repair_rounds"):  # off = the first answer
        e.pop("repair_rounds", None)
    if not e.get("temperature"):  # greedy
        e.pop("temperature", None)
    key = json.dumps({"e": e, "base": ref.identity, "style": ref.prompt_style, "v": 2}, sort_keys=True)
    return ctx.out / "evaluate_runs" / hashlib.sha256(key.encode()).hexdigest()[:12]


def row_key(bundle_dir: Path | None) -> str:
    """The content id of a row's bundle (weights + the manifest fields that shape ΔW); 'base' for none."""
    if bundle_dir is None:
        return "base"
    manifest = json.loads((Path(bundle_dir) / "manifest.json").read_text())
    shaping = {k: manifest.get(k) for k in ("files", "K", "r", "lora_alpha", "use_rslora", "target_modules")}
    shaping["hypernet"] = manifest.get("hypernet")
    return hashlib.sha256(json.dumps(shaping, sort_keys=True, default=str).encode()).hexdigest()[:12]


def stage_evaluate(ctx: Context) -> dict[str, Any]:
    from bdc_assistant.sandbox import sandbox_from_settings
    from bdc_assistant.solver.session import open_solver

    cfg = ctx.cfg
    ref = art.base_ref(ctx)
    settings = app_settings(ctx, ref)
    trained = {r.problem_id for r in art.records(ctx, "train") + art.records(ctx, "val")}
    datasets: dict[str, list] = {}
    excluded: dict[str, int] = {}
    for name in cfg.evaluate.datasets:
        probs = load_problems(name, 0)
        family = name.split("-")[0]  # mbpp-val → mbpp: training ids carry the family, not the split
        kept = [p for p in probs if p.id not in trained and f"{family}/{p.id}" not in trained]
        excluded[name] = len(probs) - len(kept)
        datasets[name] = kept[: cfg.evaluate.limit or None]
    rows = method_rows(ctx)
    sandbox = sandbox_from_settings(settings)
    try:
        results = evaluate_methods(
            rows,
            datasets,
            lambda b, i: open_solver(
                app_settings(ctx, ref, i), backend=cfg.evaluate.backend, bundle=str(b) if b else "none"
            ),
            sandbox,
            eval_runs_dir(ctx, ref),
            row_key=row_key,
            timeout_s=cfg.evaluate.timeout_s,
            max_tokens=cfg.evaluate.max_tokens,
            samples=cfg.evaluate.samples,
        )
    finally:
        sandbox.close()
    tab = table(results)
    e = cfg.evaluate
    decoding = (
        "greedy"
        if e.temperature == 0
        else f"{e.samples} sample(s) per problem at temperature {e.temperature:g}"
    )
    title = (
        f"Table 2 (shape): {ref.identity['name']} on {', '.join(e.datasets)}, "
        f"backend {e.backend}, K={art.assignments(ctx)['k']}, r={cfg.lora.r}, {decoding}"
    )
    routing = routing_section(ctx, results, datasets)
    claim = verdict_mod.verdict(results, base=BASE_ROW)
    md = markdown(tab, title) + "\n" + verdict_mod.markdown(claim) + "\n" + routing_mod.markdown(routing)
    (ctx.dir("evaluate") / "report.md").write_text(md)
    (ctx.dir("evaluate") / "report.json").write_text(
        json.dumps({"title": title, **tab, "verdict": claim, "routing": routing}, indent=2)
    )
    print(md)
    summary = tab["rows"].get("DisenLoRA", {}).get("overall")
    return {
        "table": tab,
        "summary": summary,
        "verdict": claim,
        "routing": routing,
        "excluded_trained_problems": excluded,
        "problems": {k: len(v) for k, v in datasets.items()},
    }


def routing_section(
    ctx: Context, results: dict[str, dict[str, list[dict[str, Any]]]], datasets: dict[str, list[Problem]]
) -> dict[str, Any]:
    """Input-awareness of the DisenLoRA candidate (and of TWIN's router) on labelled problems, and % of
    oracle from this table's rows (:mod:`.routing`). Always measured for the candidate, whatever rows ran:
    the export stage checks it before shipping."""
    from bdc_assistant.evaluation.problem_text import solver_text

    bundles = {"DisenLoRA": ctx.dir("hypernet") / "bundle", "TWIN": ctx.dir("baselines") / "twin" / "bundle"}
    problems = [((group_of(d, p), str(p.id)), solver_text(p)) for d, probs in datasets.items() for p in probs]
    return routing_mod.evaluation_routing(ctx, bundles, results=results, problems=problems)
