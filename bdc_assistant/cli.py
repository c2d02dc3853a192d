"""`bdc`: the command line. No subcommand opens the TUI.

Each subcommand lives in ``bdc_assistant/commands/<module>.py`` with ``add_arguments(parser)`` and
``run(args) -> int``. Those modules import nothing heavy at module level, so ``bdc --help`` stays fast
(a test checks it with ``python -X importtime``). Errors deriving from :class:`BdcError` become one
sentence on stderr and a non-zero exit code here, and nowhere else.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from . import __version__
from .errors import BdcError
from .logs import setup_logging

log = logging.getLogger(__name__)

# subcommand -> (module under bdc_assistant.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "ask": ("ask", "answer a coding problem with the local (customized) solver"),
    "check": ("check", "run a program on tests in the sandbox"),
    "eval": ("evaluate", "evaluate the local solver on a dataset (PR, AC, pass@1)"),
    "deep": ("deep", "deep mode: MC-Tree-of-Agents search over several LLMs (opt-in)"),
    "deep-bench": ("deep_bench", "compare search methods at an equal LLM-call budget"),
    "collect": ("collect", "make verified training trajectories on the training problems (resumable)"),
    "runs": ("runs", "list, export and resume deep-mode runs"),
    "keys": ("keys", "store API keys in the OS keyring"),
    "bundles": ("bundles", "list, switch and roll back solver bundles"),
    "retrain": ("retrain", "retrain experts and hypernetwork from new trajectories"),
    "models": ("models", "install and verify the embedded offline models"),
    "doctor": ("doctor", "report what is installed and which backend would run"),
    "paths": ("paths", "print the config, data, cache and state directories"),
    "config": ("config_cmd", "print the resolved settings as TOML"),
    "serve": ("serve", "serve the customized solver over an OpenAI-compatible HTTP API"),
    "acp": ("acp", "run as an Agent Client Protocol agent over stdio (for editors such as Zed)"),
    "tui": ("tui_cmd", "open the app (same as `bdc` with no subcommand)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bdc",
        description="Local coding assistant with input-aware LoRA expert customization (BDC).",
    )
    parser.add_argument("--version", action="version", version=f"bdc-assistant {__version__}")
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="log at DEBUG level (problem texts included, keys never) and echo the log to stderr",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        mod = importlib.import_module(f"bdc_assistant.commands.{module}")
        p = sub.add_parser(name, help=help_text, description=help_text)
        mod.add_arguments(p)
        p.set_defaults(_module=mod)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args([*(argv or []), "tui"])
    # the TUI owns the terminal: its log goes to the file only
    setup_logging(verbose=args.verbose, stderr=args.verbose and args.command != "tui")
    log.info("bdc %s %s", __version__, args.command)
    try:
        return int(args._module.run(args) or 0)
    except BdcError as exc:
        log.info("bdc %s stopped: %s", args.command, type(exc).__name__)
        print(f"bdc: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("bdc: interrupted.", file=sys.stderr)
        return 130
    except Exception:
        log.exception("bdc %s failed", args.command)  # a bug: the traceback goes to the log file too
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
