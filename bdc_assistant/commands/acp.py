"""`bdc acp`: the assistant as an Agent Client Protocol agent over stdio (editors such as Zed start it)."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--bundle",
        help="solver bundle directory ('none' = plain base model, 'shipped' = the one shipped for this base)",
    )
    p.add_argument("--backend", choices=["auto", "llamacpp", "torch"], help="override [backend].name")
    p.add_argument("--max-tokens", type=int, help="cap on the tokens of one answer (plan + code)")


def run(args: argparse.Namespace) -> int:
    from ..acp_agent.agent import BdcAcpAgent
    from ..acp_agent.stdio import run_acp
    from ..backends.select import BACKENDS
    from ..config import load_settings
    from ..errors import BackendUnavailable, ConfigError
    from ..serve.jobs import Sampling

    try:
        import acp  # noqa: F401  (fail here, with one sentence, not inside the protocol loop)
    except ImportError as exc:
        raise BackendUnavailable(
            "`bdc acp` needs the agent-client-protocol package, which is not installed; run `make install`."
        ) from exc
    if args.max_tokens is not None and args.max_tokens < 1:
        raise ConfigError("--max-tokens must be at least 1.")
    settings = load_settings()
    backend = args.backend if args.backend in BACKENDS else None
    bundle = args.bundle

    def open_solver() -> object:
        from ..solver.session import open_solver as _open

        return _open(settings, backend=backend, bundle=bundle)

    run_acp(BdcAcpAgent(settings, solver_factory=open_solver, sampling=Sampling(max_tokens=args.max_tokens)))
    return 0
