"""`bdc deep PROBLEM --tests FILE --agent PROVIDER:URL:MODEL ...`: MC-Tree-of-Agents over several LLMs.

Progress (rollouts, best public pass rate, calls, spend) goes to stderr with ``--json`` and to stdout
otherwise; with ``--json`` stdout is exactly one JSON line:
``{"best_code", "public_pass_rate", "nodes", "pruned", "refined", "calls", "run_id", "stopped_by"}``.
Nothing is sent before consent is on record (asked once in a terminal, or ``--yes`` for this run).
Ctrl-C stops at the next call boundary; the run stays resumable with ``bdc runs resume RUN_ID``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import signal
import sys
from pathlib import Path
from typing import Any, Literal, TextIO

from ..deep.progress import Progress
from ..errors import ProviderError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("problem", help="problem text, a file holding it, or - for stdin")
    p.add_argument(
        "--tests", type=Path, help="tests file (.json/.jsonl of input/output or assert; .py asserts)"
    )
    p.add_argument(
        "--agent",
        action="append",
        default=[],
        metavar="PROVIDER:URL:MODEL",
        help="an LLM agent (repeat); URL may be empty: anthropic::MODEL",
    )
    p.add_argument("--max-calls", type=int, help="cap on LLM calls (cache hits count)")
    p.add_argument("--budget-usd", type=float, help="cap on spend in USD (never exceeded)")
    p.add_argument("--max-tokens", type=int, help="cap on input+output tokens")
    p.add_argument("--wall-clock", type=float, help="cap on search wall time in seconds")
    p.add_argument("--rollouts", type=int)
    p.add_argument("--width", type=int, help="thoughts per policy per expansion")
    p.add_argument("--max-depth", type=int)
    p.add_argument("--selection", choices=["pucb", "var_p_ucb"])
    p.add_argument("--no-prune", action="store_true")
    p.add_argument("--no-refine", action="store_true")
    p.add_argument("--no-examples", action="store_true", help="do not use examples parsed from the statement")
    p.add_argument("--generate-tests", type=int, metavar="N", help="ask the first agent for N extra tests")
    p.add_argument("--seed", type=int)
    p.add_argument(
        "--pick",
        choices=["first", "sstar"],
        help="final program among those tied on the public tests (default: config deep.pick); sstar keeps "
        "one call back to ask for distinguishing inputs",
    )
    p.add_argument(
        "--yes", action="store_true", help="consent to sending the problem to the agents, for this run"
    )
    p.add_argument("--json", action="store_true", help="stdout is one JSON line; progress goes to stderr")


def read_problem(text: str) -> str:
    if text == "-":
        return sys.stdin.read()
    path = Path(text)
    try:
        if len(text) < 4096 and path.is_file():
            return path.read_text(encoding="utf-8")
    except OSError:
        pass
    return text


def ask_on_terminal() -> Any:
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        return None

    def ask(text: str) -> bool:
        print(text, file=sys.stderr)
        answer = input("Enable deep mode and send this data? [y/N] ")
        return answer.strip().lower() in ("y", "yes")

    return ask


def install_cancel() -> Any:
    """First Ctrl-C cancels the run gracefully; a second one interrupts at once."""
    from ..types import CancelToken

    cancel = CancelToken()

    def handler(signum: int, frame: object) -> None:
        if cancel.cancelled:
            raise KeyboardInterrupt
        print("bdc: stopping after the current call (Ctrl-C again to abort)…", file=sys.stderr)
        cancel.cancel()

    with contextlib.suppress(ValueError):  # not the main thread: no handler, Ctrl-C interrupts
        signal.signal(signal.SIGINT, handler)
    return cancel


def finish(result: Any, args: argparse.Namespace, out: TextIO) -> int:
    if args.json:
        print(json.dumps(result.as_json()), flush=True)
    else:
        print(
            f"\nbest public pass rate {result.public_pass_rate:.3f} after {result.calls} calls "
            f"(${result.spend_usd:.4f}); stopped by {result.stopped_by}; run {result.run_id}",
            file=out,
        )
        print(result.best_code, file=out)
    if result.stopped_by.startswith("provider_"):
        print(f"bdc: the run stopped on a provider error: {result.detail}", file=sys.stderr)
        return ProviderError.exit_code
    return 0


def run(args: argparse.Namespace) -> int:
    from ..config import load_settings
    from ..deep.consent import ensure_consent
    from ..deep.llm import Budgets
    from ..deep.problem_tests import load_tests_file, merge_tests, statement_examples
    from ..deep.providers.presets import parse_agent, unique_names
    from ..deep.runner import DeepRunner, search_config
    from ..errors import ConfigError
    from ..store.runs import RunStore, new_run_id
    from ..types import Problem

    settings = load_settings()
    deep = settings.deep
    statement = read_problem(args.problem).strip()
    if not statement:
        raise ConfigError("The problem is empty.")
    agents = unique_names([parse_agent(a) for a in (args.agent or deep.agents)])
    if not agents:
        raise ConfigError("No agents: pass --agent PROVIDER:URL:MODEL (or set deep.agents in the config).")
    tests = load_tests_file(args.tests) if args.tests else []
    examples = [] if args.no_examples else statement_examples(statement)
    public = merge_tests(tests, examples)
    kind: Literal["stdio", "call"] = "call" if public and all(t.kind == "call" for t in public) else "stdio"
    entry = None
    if kind == "call":
        import re

        m = re.search(r"assert\s*\(?\s*([A-Za-z_]\w*)\s*\(", public[0].input)
        entry = m.group(1) if m else None
    problem = Problem(
        id="user-" + hashlib.sha256(statement.encode()).hexdigest()[:10],
        statement=statement,
        public_tests=tuple(public),
        kind=kind,
        entry_point=entry,
        source="user",
    )
    overrides: dict[str, Any] = {}
    for name in ("rollouts", "width", "max_depth", "selection", "seed"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    if args.no_prune:
        overrides["prune"] = False
    if args.no_refine:
        overrides["refine"] = False
    config = search_config(deep, **overrides)
    budgets = Budgets(
        max_calls=args.max_calls if args.max_calls is not None else deep.max_calls,
        budget_usd=args.budget_usd if args.budget_usd is not None else deep.budget_usd,
        max_tokens_total=args.max_tokens if args.max_tokens is not None else deep.max_tokens_total,
        wall_clock_s=args.wall_clock if args.wall_clock is not None else deep.wall_clock_s,
    )
    if budgets.max_calls < 1 or budgets.budget_usd < 0:
        raise ConfigError("--max-calls must be at least 1 and --budget-usd at least 0.")
    n_gen = args.generate_tests if args.generate_tests is not None else deep.generate_tests
    if not public and not n_gen:
        from ..errors import DatasetError

        raise DatasetError(
            "No public tests: pass --tests FILE, put examples in the statement, or add --generate-tests N."
        )
    store = RunStore()
    run_id = new_run_id()
    ensure_consent(store, [a.base_url for a in agents], yes=args.yes, run_id=run_id, ask=ask_on_terminal())
    out = sys.stderr if args.json else sys.stdout
    runner = DeepRunner(store=store, settings=deep)
    result = runner.run(
        problem,
        agents,
        budgets,
        on_event=Progress(out),
        cancel=install_cancel(),
        config=config,
        run_id=run_id,
        generate_tests=args.generate_tests,
        pick=args.pick,
    )
    return finish(result, args, out)
