"""`bdc deep-bench --dataset humaneval --limit N --agent ... [--methods LIST] [--pick first|sstar] --json`:
AC of zero-shot (1 call), best-of-n, each single agent, MC-ToA, +prune and +prune+refine (and, on request,
the paper's Table-1 baselines LDB, RAP, Reflexion, LATS, ToT, RethinkMCTS) at an equal LLM-call budget
(scored on private tests after the search); see :mod:`bdc_assistant.deep.bench` for the budget rules.
Ctrl-C or SIGTERM stops it after whole problems: the report covers those finished, and exits 130."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="humaneval", help="humaneval, mbpp, codecontests, apps:PATH, …")
    p.add_argument("--limit", type=int, default=10, help="first N problems")
    p.add_argument("--agent", action="append", default=[], metavar="PROVIDER:URL:MODEL")
    p.add_argument("--max-calls", type=int, default=12, help="LLM calls per problem per method")
    p.add_argument("--budget-usd", type=float, default=1.0, help="spend cap per problem per method")
    p.add_argument("--rollouts", type=int, help="rollout cap (default: the calls budget decides)")
    p.add_argument("--width", type=int)
    p.add_argument(
        "--pick",
        choices=["first", "sstar"],
        help="final program among those tied on the public tests (default: config deep.pick); sstar keeps "
        "one call back for distinguishing inputs and also reports the first pick's AC from the same trees",
    )
    p.add_argument(
        "--methods",
        metavar="LIST",
        help="comma list of zero-shot, best-of-n, ldb, rap, reflexion, lats, tot, rethinkmcts, single, "
        "mc-toa, mc-toa+prune, mc-toa+prune+refine (or all; default: zero-shot, best-of-n, single and the "
        "three mc-toa rows); the Table-1 baselines run once per agent",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="problems in flight at once (default 1); more only helps a server that answers concurrent "
        "requests together (llama.cpp's llama-server --parallel N, cloud APIs); the numbers do not change",
    )
    p.add_argument(
        "--replay-outcomes",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="read each program's test outcome back from the store when an earlier sitting recorded it, "
        "so a resumed bench (even on a faster or slower machine) sees what the first sitting saw; "
        "--no-replay-outcomes runs every program again and records nothing",
    )
    p.add_argument("--yes", action="store_true", help="consent to sending the problems to the agents")
    p.add_argument("--json", action="store_true", help="stdout is one JSON line; progress goes to stderr")
    p.add_argument("--markdown", type=Path, metavar="FILE", help="also write the table as Markdown to FILE")


def run(args: argparse.Namespace) -> int:
    from ..config import load_settings
    from ..deep.bench import markdown, method_names, run_bench, table
    from ..deep.consent import ensure_consent
    from ..deep.evaluate import SandboxEvaluator
    from ..deep.outcomes import OutcomeRecord, recorded, sandbox_limits
    from ..deep.providers.presets import parse_agent, unique_names
    from ..deep.runner import DeepRunner
    from ..deep.search import Evaluator, PublicProblem
    from ..errors import ConfigError
    from ..evaluation.datasets import load_dataset
    from ..sandbox import default_sandbox
    from ..store.runs import RunStore
    from .deep import ask_on_terminal

    names = method_names(args.methods)
    settings = load_settings()
    agents = unique_names([parse_agent(a) for a in (args.agent or settings.deep.agents)])
    if not agents:
        raise ConfigError("No agents: pass --agent PROVIDER:URL:MODEL (twice or more to compare).")
    if args.max_calls < 1 or args.limit < 1 or args.jobs < 1:
        raise ConfigError("--max-calls, --limit and --jobs must be at least 1.")
    deep = settings.deep.model_copy(
        update={
            k: v
            for k, v in {"rollouts": args.rollouts or 10000, "width": args.width}.items()
            if v is not None
        }
    )
    problems = load_dataset(args.dataset, limit=args.limit)
    store = RunStore()
    urls = [a.base_url for a in agents]
    ask = ask_on_terminal()
    state = {"asked": False}

    def consent(run_id: str) -> None:
        if args.yes:
            ensure_consent(store, urls, yes=True, run_id=run_id, ask=None)
        elif not state["asked"]:
            ensure_consent(store, urls, yes=False, run_id=run_id, ask=ask)
            state["asked"] = True

    out = sys.stderr if args.json else sys.stdout
    sandbox = default_sandbox()
    # Its own connection: with --jobs, the record is shared by every thread.
    outcomes = OutcomeRecord(RunStore(), sandbox_limits(sandbox)) if args.replay_outcomes else None

    def evaluator(pub: PublicProblem) -> Evaluator:
        return recorded(SandboxEvaluator(sandbox, pub), outcomes)  # type: ignore[no-any-return]

    runner = DeepRunner(store=store, settings=deep, evaluator_factory=evaluator)
    stop_on_sigterm()
    report = run_bench(
        runner,
        problems,
        agents,
        max_calls=args.max_calls,
        budget_usd=args.budget_usd,
        sandbox=sandbox,
        pick=args.pick or deep.pick,
        on_progress=lambda s: print(s, file=out, flush=True),
        consent=consent,
        methods_asked=names,
        jobs=args.jobs,
        make_runner=lambda: DeepRunner(store=RunStore(), settings=deep, evaluator_factory=evaluator),
        outcomes=outcomes,
    )
    report["dataset"] = args.dataset
    if outcomes is not None:
        report["sandbox_outcomes"] = outcomes.counts()
    print("\n" + table(report), file=out)
    if args.markdown:
        from ..atomic import write_text

        write_text(args.markdown, markdown(report))
    if args.json:
        print(json.dumps(report))
    return 130 if "interrupted" in report else 0


def stop_on_sigterm() -> None:
    """SIGTERM stops the bench like Ctrl-C: the report of the problems finished so far is still printed."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    with contextlib.suppress(ValueError):  # not the main thread (tests): leave the default
        signal.signal(signal.SIGTERM, handler)
