"""Rejection sampling: a local model's own one-turn answers on the TRAINING problems, kept only when verified.

``python -m trainer.sample --dataset mbpp-train --samples 6 --temperature 0.8 --out FILE.jsonl [--gguf PATH]``

A labelled data source beside ``bdc collect`` (MC-ToA with agents) and the reference-solution bootstrap: the
app's own solver (one turn, the prompt it answers with, no repair) writes ``samples`` answers per training
problem at ``temperature`` (seed ``seed + i`` for answer i, so a rerun writes the same answers), each is run on
the problem's public AND private tests in the sandbox, and a line is written only for a program that passes
all of them and is not a duplicate of one already kept for that problem (compared as normalised ASTs, so a
renamed comment does not count as a new program). Several distinct verified programs per problem is the point
(rejection-sampling fine-tuning): the earlier sources gave one program per problem.

With ``--negatives true`` every distinct failing answer is also kept, in ``FILE.negatives.jsonl`` beside
``FILE`` (never in it): ``"verified": false, "negative": true`` and the ``"rejected"`` reason, the same marking
``bdc collect`` gives its negatives. Only preference training reads them (``data.negatives``), as the rejected
side of a pair whose chosen side is a verified program of the same problem.

Validation and test sets are refused (``bdc_assistant.deep.collect.training_problems``). Resumable: each
finished problem appends one line to ``FILE.progress.jsonl`` (attempts, passes, distinct programs, seconds and
its lines) before its lines go to ``FILE``, and a rerun skips the problems listed there. The progress file is
the record: a rerun first drops a torn last line from it and rebuilds ``FILE`` from it, so a process killed
anywhere leaves neither a half-written line nor the lines of a problem it had not finished. The summary
(problems/hour, verified problems, lines) is printed and written to ``FILE.summary.json`` with the resolved
settings.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bdc_assistant import atomic
from bdc_assistant.errors import BdcError, ConfigError


@dataclass(frozen=True)
class SampleConfig:
    dataset: str = "mbpp-train"
    samples: int = 6
    temperature: float = 0.8
    top_p: float = 0.95
    seed: int = 0
    max_tokens: int = 384
    timeout_s: float = 4.0
    gguf: str = ""  # empty: the embedded base
    threads: int = 0
    limit: int = 0
    negatives: bool = False  # also keep the failing answers, in FILE.negatives.jsonl

    def __post_init__(self) -> None:
        if self.samples < 1 or self.temperature < 0 or self.limit < 0:
            raise ConfigError(
                f"trainer.sample needs --samples >= 1, --temperature >= 0 and --limit >= 0 "
                f"(got {self.samples}, {self.temperature:g}, {self.limit})."
            )


def program_key(code: str) -> str:
    """Same program, up to formatting and comments: the AST dump without docstrings; the text when it does not
    parse (it would not have passed the tests anyway)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return " ".join(code.split())
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]  # type: ignore[attr-defined]
    return ast.dump(tree)


def sample_problem(solver: Any, sandbox: Any, problem: Any, cfg: SampleConfig, policy: str) -> dict[str, Any]:
    """The problem's progress record, its lines (to write) under ``"lines"``. Tests run under the sandbox's own per-test limit
    (``_open_solver`` builds it with ``cfg.timeout_s``)."""
    from bdc_assistant.deep.collect import Verifier
    from bdc_assistant.evaluation.runner import prepare_code

    text = problem.statement  # training_problems already made it the solver's text
    settings = solver.settings
    kept: dict[str, dict[str, Any]] = {}
    failed: dict[str, dict[str, Any]] = {}
    verifier = Verifier(sandbox, problem)  # the rule bdc collect verifies by; a repeated program runs once
    passes, t0 = 0, time.monotonic()
    for i in range(cfg.samples):
        backend = settings.backend.model_copy(update={"seed": cfg.seed + i})
        solver.settings = settings.model_copy(update={"backend": backend})
        answer = solver.answer(text, max_tokens=cfg.max_tokens)
        code = prepare_code(problem, answer.code)
        line = {
            "problem_id": problem.id,
            "problem": text,
            "thought": "",
            "solution": code,
            "public_pass_rate": 1.0,
            "source": f"rejection-sampling:{cfg.dataset}:t{cfg.temperature:g}:s{cfg.seed + i}",
            "policy": policy,
            "verified": True,
        }
        why = verifier.failure(code)
        if why:
            if cfg.negatives:
                failed.setdefault(
                    program_key(code),
                    line
                    | {
                        "public_pass_rate": verifier.public_rate.get(code, 0.0),
                        "verified": False,
                        "negative": True,
                        "rejected": why,
                    },
                )
            continue
        passes += 1
        kept.setdefault(program_key(code), line)
    solver.settings = settings
    record = {
        "problem_id": problem.id,
        "attempts": cfg.samples,
        "passes": passes,
        "distinct": len(kept),
        "seconds": round(time.monotonic() - t0, 2),
        "lines": list(kept.values()),
    }
    if cfg.negatives:
        record["negatives"] = list(failed.values())
    return record


def negatives_path(out: Path) -> Path:
    """Where ``--negatives`` keeps the failing answers: beside ``out``, never in it."""
    return out.with_name(out.stem + ".negatives" + (out.suffix or ".jsonl"))


def _resume(progress_file: Path, out: Path) -> dict[str, dict[str, Any]]:
    """The finished problems' records; drops a torn last line (killed mid-write) from the progress file and
    rebuilds ``out`` from the records, so it holds exactly the finished problems' lines."""
    done: dict[str, dict[str, Any]] = {}
    if progress_file.is_file():
        good = []
        for line in progress_file.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
                done[rec["problem_id"]] = rec
            except (json.JSONDecodeError, TypeError, KeyError):
                continue  # torn or not a record: that problem is redone
            good.append(line + "\n")
        atomic.write_text(progress_file, "".join(good))
    atomic.write_text(out, "".join(_jsonl(rec.get("lines", [])) for rec in done.values()))
    if any("negatives" in rec for rec in done.values()):
        atomic.write_text(
            negatives_path(out), "".join(_jsonl(rec.get("negatives", [])) for rec in done.values())
        )
    return done


def append_record(progress_file: Path, out: Path, record: dict[str, Any]) -> None:
    """A finished unit's record, then its lines: killed between the two, a rerun rebuilds ``out`` from the
    records (:func:`_resume`), so the lines of an unrecorded unit never stay."""
    with progress_file.open("a", encoding="utf-8") as f:
        f.write(json.dumps(record, ensure_ascii=False) + "\n")
    with out.open("a", encoding="utf-8") as f:
        f.write(_jsonl(record["lines"]))
    if "negatives" in record:
        with negatives_path(out).open("a", encoding="utf-8") as f:
            f.write(_jsonl(record["negatives"]))


def _jsonl(lines: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines)


def _open_solver(cfg: SampleConfig, scratch: Path) -> Any:
    from bdc_assistant.config import load_settings
    from bdc_assistant.solver.session import open_solver

    settings = load_settings(
        config_file=scratch / "no-user-config.toml",  # the user's config must not change the data
        models={"base_gguf": cfg.gguf},
        backend={"name": "llamacpp", "seed": cfg.seed, "threads": cfg.threads},
        solver={
            "max_tokens": cfg.max_tokens,
            "temperature": cfg.temperature,
            "top_p": cfg.top_p,
            "repair_rounds": 0,
            "plan": "off",
        },
        sandbox={"timeout_s": cfg.timeout_s},
    )
    return open_solver(settings, backend="llamacpp", bundle="none"), settings


def run(cfg: SampleConfig, out: Path, on_progress: Any = print) -> dict[str, Any]:
    from bdc_assistant.deep.collect import training_problems
    from bdc_assistant.sandbox import sandbox_from_settings

    problems = training_problems(cfg.dataset, cfg.limit or None)
    with contextlib.ExitStack() as closing:  # on the way out: the sandbox, then the solver
        solver, settings = _open_solver(cfg, out.parent)  # a model that will not open leaves no file behind
        closing.callback(solver.close)
        out.parent.mkdir(parents=True, exist_ok=True)
        progress_file = out.with_name(out.name + ".progress.jsonl")
        done = _resume(progress_file, out)
        sandbox = sandbox_from_settings(settings)
        closing.callback(sandbox.close)
        todo = [p for p in problems if p.id not in done and p.public_tests and p.private_tests]
        policy = f"local:{solver.generator.model_id}"
        t0 = time.monotonic()
        for n, problem in enumerate(todo, 1):
            record = sample_problem(solver, sandbox, problem, cfg, policy)
            append_record(progress_file, out, record)
            done[problem.id] = record
            rate = n * 3600 / max(time.monotonic() - t0, 1e-9)
            on_progress(
                f"[{len(done)}/{len(problems)}] {problem.id}: {record['passes']}/{cfg.samples} pass, "
                f"{record['distinct']} distinct · {rate:.1f} problems/h"
            )
    wall = time.monotonic() - t0
    recs = list(done.values())
    summary = {
        "config": asdict(cfg),
        "policy": policy,
        "problems": len(problems),
        "sampled": len(recs),
        "verified_problems": sum(r["distinct"] > 0 for r in recs),
        "lines": sum(r["distinct"] for r in recs),
        "passes": sum(r["passes"] for r in recs),
        "attempts": sum(r["attempts"] for r in recs),
        "negatives": sum(len(r.get("negatives", [])) for r in recs),
        "seconds_this_run": round(wall, 1),
        "problems_per_hour_this_run": round(len(todo) * 3600 / wall, 1) if wall > 0 and todo else None,
    }
    out.with_name(out.name + ".summary.json").write_text(
        json.dumps(summary, indent=2) + "\n", encoding="utf-8"
    )
    return summary


def _flag(text: str) -> bool:
    """A boolean option's value: true/false, yes/no, on/off or 1/0."""
    value = {
        "true": True,
        "yes": True,
        "on": True,
        "1": True,
        "false": False,
        "no": False,
        "off": False,
        "0": False,
    }
    try:
        return value[text.strip().lower()]
    except KeyError:
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}") from None


def cli_main(
    argv: Sequence[str] | None, prog: str, doc: str, config_cls: Any, run_fn: Any, out_help: str
) -> int:
    """The command line of a data maker: one ``--flag`` per field of its frozen config, ``--out``; the summary
    printed as JSON, a :class:`BdcError` as one sentence on stderr with its exit code."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    p = argparse.ArgumentParser(prog=prog, description=doc.split("\n\n")[0])
    for f in config_cls.__dataclass_fields__.values():
        kind = _flag if isinstance(f.default, bool) else type(f.default)  # bool("false") would be True
        p.add_argument("--" + f.name.replace("_", "-"), type=kind, default=f.default)
    p.add_argument("--out", type=Path, required=True, help=out_help)
    args = vars(p.parse_args(argv))
    out = args.pop("out")
    try:
        summary = run_fn(config_cls(**args), out.expanduser().resolve(), lambda s: print(s, file=sys.stderr))
    except BdcError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    print(json.dumps(summary))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return cli_main(
        argv,
        "python -m trainer.sample",
        __doc__,
        SampleConfig,
        run,
        "JSONL of verified lines (appended; resumable)",
    )


if __name__ == "__main__":
    raise SystemExit(main())
