"""`bdc ask PROBLEM`: stream a plan, then code, from the local (customized) solver."""

from __future__ import annotations

import argparse
import json
import sys

from ..errors import ConfigError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("problem", nargs="?", default="-", help="the problem text, or '-' (default) to read stdin")
    p.add_argument("--backend", choices=["auto", "llamacpp", "torch"], help="override [backend].name")
    p.add_argument("--max-tokens", type=int, help="max tokens of the solution stage")
    p.add_argument("--thought-tokens", type=int, help="max tokens of the plan stage")
    p.add_argument(
        "--bundle",
        help="solver bundle directory ('none' = plain base model, 'shipped' = the one shipped for this base)",
    )
    p.add_argument(
        "--model", choices=["coder-0.5b", "coder-1.5b", "gemma-270m"], help="override [models] solver"
    )
    p.add_argument(
        "--json", action="store_true", help="print one JSON object at the end instead of streaming"
    )


def run(args: argparse.Namespace) -> int:
    from ..backends.base import CancelToken
    from ..config import load_settings
    from ..solver.session import open_solver
    from ..types import Answer, Checked, CodeToken, StageDone, Started, ThoughtToken

    problem = sys.stdin.read() if args.problem == "-" else args.problem
    if not problem.strip():
        raise ConfigError("The problem is empty; pass it as an argument or on stdin.")
    if args.max_tokens is not None and args.max_tokens < 1:
        raise ConfigError("--max-tokens must be at least 1.")
    settings = load_settings()
    if args.model:
        settings.models.solver = args.model
    solver = open_solver(settings, backend=args.backend, bundle=args.bundle)
    cancel = CancelToken()
    out = sys.stdout
    answer: Answer | None = None
    try:
        for ev in solver.solve(
            problem, cancel=cancel, max_tokens=args.max_tokens, thought_tokens=args.thought_tokens
        ):
            if isinstance(ev, Answer):
                answer = ev
            elif args.json:
                continue
            elif isinstance(ev, Started):
                note = f"bundle {ev.bundle}" if ev.bundle else solver.bundle_note
                print(f"# {ev.backend} · {ev.model} · {note}", file=sys.stderr)
                if ev.gates is not None:
                    mix = " ".join(f"e{k}={v:.2f}" for k, v in enumerate(ev.gates.expert_means()))
                    print(f"# experts: {mix}", file=sys.stderr)
                out.write("## Plan\n")
            elif isinstance(ev, ThoughtToken | CodeToken):
                out.write(ev.text)
                out.flush()
            elif isinstance(ev, Checked):
                print(f"# examples stated in the problem: {ev.passed}/{ev.total} passed", file=sys.stderr)
                if ev.kept:
                    out.write(f"\n## Answer (the earlier version)\n```python\n{ev.kept.rstrip()}\n```\n")
                if ev.repairing:
                    failure = "\n".join("> " + line for line in ev.failure.splitlines())
                    out.write(f"\n## Fix\n{failure}\n```python\n")
            elif isinstance(ev, StageDone) and ev.stage == "thought":
                out.write("\n\n## Solution\n```python\n")
            elif isinstance(ev, StageDone):
                out.write("\n```\n")
    except KeyboardInterrupt:
        cancel.cancel()
        raise
    finally:
        solver.close()
    assert answer is not None
    if args.json:
        payload = {
            "thought": answer.thought,
            "code": answer.code,
            "backend": answer.backend,
            "model": answer.model,
            "bundle": answer.bundle,
            "bundle_note": solver.bundle_note if answer.bundle is None else "",
            "tokens": answer.tokens,
            "seconds": round(answer.seconds, 3),
            "tokens_per_s": round(answer.tokens_per_s, 2),
            "setup_ms": round(float(answer.extra.get("setup_ms", 0.0)), 2),
            "examples": answer.extra.get("examples"),
            "experts": [round(x, 4) for x in answer.gates.expert_means()] if answer.gates else None,
            "clusters": list(answer.gates.cluster_names) if answer.gates else None,
        }
        print(json.dumps(payload))
    else:
        print(
            f"# {answer.tokens} tokens in {answer.seconds:.1f}s ({answer.tokens_per_s:.1f} tok/s)",
            file=sys.stderr,
        )
    return 0
