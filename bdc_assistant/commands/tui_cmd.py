"""`bdc tui` (and `bdc` with no subcommand): open the Textual app on the local engine.

Imports stay inside ``run`` so ``bdc --help`` never loads Textual; the app itself loads the solver
(torch / llama.cpp) in a worker after its first frame.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--theme", choices=["dark", "light"], help="override [tui] theme for this run")
    parser.add_argument("--no-history", action="store_true", help="do not read or write the history database")
    parser.add_argument(
        "--exit-after-first-frame",
        action="store_true",
        help="draw one frame and exit (start-up benchmark; also BDC_EXIT_AFTER_FIRST_FRAME=1)",
    )


def run(args: argparse.Namespace) -> int:
    from ..config import load_settings
    from ..tui.app import BdcApp

    settings = load_settings()
    if args.theme:
        settings.tui.theme = args.theme
    exit_early = args.exit_after_first_frame or os.environ.get(
        "BDC_EXIT_AFTER_FIRST_FRAME", ""
    ).strip().lower() in {"1", "true", "yes", "on"}
    frame_file = os.environ.get("BDC_FIRST_FRAME_FILE")
    history = None
    if settings.tui.history and not args.no_history:
        from ..store.history import open_history

        history = open_history()
    from ..tui.real_engine import RealEngine

    engine = RealEngine(settings)
    app = BdcApp(
        settings,
        engine,
        history,
        exit_after_first_frame=exit_early,
        first_frame_file=Path(frame_file) if frame_file else None,
    )
    try:
        app.run()
    finally:
        engine.close()
        if history is not None:
            history.close()
    return int(app.return_code or 0)
