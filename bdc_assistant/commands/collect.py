"""`bdc collect --dataset mbpp-train --agent PROVIDER:URL:MODEL ... [--parallel P] [--yes] [--json]`: verified
System-2 trajectories (MC-ToA search, then the public AND private tests in the sandbox) on the training
problems, resumably, into the trainer's trajectories dir; see :mod:`bdc_assistant.deep.collect`."""

from __future__ import annotations

import argparse
import json
import sys

EPILOG = """\
Validation and test sets (mbpp-val, codecontests-val, humaneval) are refused: they must never become
training data. Only verified pairs are written: the run's final program and each exported node's program
pass every public and every private test; pruned or failing nodes are never training pairs (--negatives
writes them to a separate folder). Rerun the same command to resume: finished problems are skipped, a
problem killed mid-search resumes from its last rollout.

Locally, one llama_cpp.server process per model (Qwen2.5-Coder 1.5B and 0.5B instruct GGUFs, assembled
into the models dir by `bdc models install`):

  bdc models install coder-0.5b && bdc models install coder-1.5b
  M=$(bdc paths --json | python -c 'import json,sys; print(json.load(sys.stdin)["models_dir"])')
  python -m llama_cpp.server --model $M/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf --model_alias qwen1.5b \\
      --chat_format chatml --n_ctx 4096 --n_threads 2 --host 127.0.0.1 --port 8081 &
  python -m llama_cpp.server --model $M/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf --model_alias qwen0.5b \\
      --chat_format chatml --n_ctx 4096 --n_threads 2 --host 127.0.0.1 --port 8082 &
  bdc collect --dataset mbpp-train --dataset codecontests-train \\
      --agent openai:http://127.0.0.1:8081/v1:qwen1.5b --agent openai:http://127.0.0.1:8082/v1:qwen0.5b \\
      --max-calls 12 --parallel 2 --yes

Add cloud agents (e.g. --agent anthropic::claude-3-5-haiku-20241022) when their keys are set."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = EPILOG
    p.add_argument(
        "--dataset",
        action="append",
        default=[],
        help="training set: mbpp-train (default), codecontests-train, or codecontests:PATH / apps:PATH "
        "(validation ids dropped); repeat for several",
    )
    p.add_argument("--agent", action="append", default=[], metavar="PROVIDER:URL:MODEL")
    p.add_argument("--max-calls", type=int, default=12, help="LLM calls per problem (default 12)")
    p.add_argument("--budget-usd", type=float, default=1.0, help="spend cap per problem")
    p.add_argument("--rollouts", type=int, help="rollout cap per problem (default: config deep.rollouts)")
    p.add_argument("--width", type=int)
    p.add_argument("--limit", type=int, help="first N training problems of each dataset")
    p.add_argument("--parallel", type=int, default=2, help="problems in flight at once (default 2)")
    p.add_argument(
        "--negatives",
        action="store_true",
        help="also write the lines that are not training pairs, marked negative, to a separate folder "
        "(data dir/negatives), never where the trainer reads",
    )
    p.add_argument("--yes", action="store_true", help="consent to sending the problems to the agents")
    p.add_argument("--json", action="store_true", help="stdout is one JSON line; progress goes to stderr")


def run(args: argparse.Namespace) -> int:
    from .. import bundles
    from ..config import load_settings
    from ..deep.collect import (
        CollectError,
        Job,
        Options,
        collect,
        collection_key,
        key_spec,
        refuse_validation,
        register_key,
        summary,
        training_problems,
    )
    from ..deep.consent import ensure_consent
    from ..deep.providers.presets import parse_agent, unique_names
    from ..deep.runner import DeepRunner, search_config
    from ..errors import ConfigError
    from ..paths import app_paths
    from ..sandbox import default_sandbox
    from ..store.runs import RunStore
    from .deep import ask_on_terminal

    datasets = args.dataset or ["mbpp-train"]
    for d in datasets:
        refuse_validation(d)  # before anything else: one sentence, nothing loaded or sent
    settings = load_settings()
    agents = unique_names([parse_agent(a) for a in (args.agent or settings.deep.agents)])
    if not agents:
        raise ConfigError("No agents: pass --agent PROVIDER:URL:MODEL (once per model server).")
    if args.max_calls < 1 or args.parallel < 1 or (args.limit is not None and args.limit < 1):
        raise ConfigError("--max-calls, --parallel and --limit must be at least 1.")
    overrides = {"rollouts": args.rollouts, "width": args.width}
    deep = settings.deep.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    config = search_config(deep)
    extra = {
        "llm": {"temperature": deep.temperature, "max_output_tokens": deep.max_output_tokens},
        "pick": deep.pick,
    }
    store = RunStore()
    jobs: list[Job] = []
    for d in datasets:
        spec = key_spec(d, agents, config, max_calls=args.max_calls, budget_usd=args.budget_usd, extra=extra)
        key = collection_key(spec)
        register_key(store, key, spec)
        jobs += [Job(d, key, p) for p in training_problems(d, args.limit)]

    urls = [a.base_url for a in agents]
    if not args.yes:  # ask once, here, before any worker starts (recorded as "always" for these hosts)
        ensure_consent(store, urls, yes=False, run_id="collect", ask=ask_on_terminal())

    def consent(run_store: RunStore, run_id: str) -> None:
        if args.yes:
            ensure_consent(run_store, urls, yes=True, run_id=run_id, ask=None)

    out = sys.stderr if args.json else sys.stdout
    negatives = app_paths().data_dir / "negatives" if args.negatives else None
    opts = Options(
        max_calls=args.max_calls,
        budget_usd=args.budget_usd,
        max_tokens_total=deep.max_tokens_total,
        wall_clock_s=deep.wall_clock_s,
        config=config,
        parallel=args.parallel,
        out_dir=bundles.trajectories_dir(),
        negatives_dir=negatives,
    )
    try:
        report = collect(
            jobs,
            agents,
            store=store,
            make_runner=lambda: DeepRunner(store=RunStore(), settings=deep),
            sandbox=default_sandbox(),
            opts=opts,
            consent=consent,
            on_progress=lambda s: print(s, file=sys.stderr, flush=True),
        )
    finally:
        store.close()
    report["datasets"] = datasets
    report["agents"] = [a.name for a in agents]
    print(summary(report), file=out)
    if args.json:
        print(json.dumps(report))
    if report["stopped"]:
        raise CollectError(f"Collection stopped: {report['stopped']}; rerun the same command to go on.")
    return 0
