"""`bdc` with no subcommand opens the TUI, and the first frame comes before any heavy import."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import pytest

from bdc_assistant import cli

REPO = Path(__file__).resolve().parents[2]


def _bench() -> object:
    spec = importlib.util.spec_from_file_location("bench_startup", REPO / "bench" / "startup.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_no_subcommand_routes_to_the_tui(monkeypatch: pytest.MonkeyPatch) -> None:
    from bdc_assistant.commands import tui_cmd

    seen: list[argparse.Namespace] = []
    monkeypatch.setattr(tui_cmd, "run", lambda args: seen.append(args) or 0)
    assert cli.main([]) == 0
    assert len(seen) == 1 and seen[0].command == "tui"


def test_tui_command_module_is_light() -> None:
    # importing the command module (done by `bdc --help`) must not import Textual
    code = "import sys, bdc_assistant.commands.tui_cmd; print('textual' in sys.modules)"
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "False"


def test_first_frame_in_a_real_pty_without_heavy_imports(tmp_path: Path) -> None:
    bench = _bench()
    result = bench.one_run(REPO, tmp_path, importtime=True)  # type: ignore[attr-defined]
    assert result["rc"] == 0
    assert result["heavy_imported"] == []
    # the budget is 1.0 s (bench/startup.py, median of 5); a single run on a busy CI box gets slack
    assert 0 < result["first_frame_s"] < 3.0
