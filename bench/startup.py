"""Start-up time of the TUI: process start → first frame drawn, in a real pseudo-terminal.

Each run spawns ``python -m bdc_assistant`` (the same path as ``bdc`` with no subcommand) on a fresh
``BDC_HOME`` inside a 120×36 pty, with ``BDC_EXIT_AFTER_FIRST_FRAME=1``: the app writes the wall-clock
time of its first frame to ``BDC_FIRST_FRAME_FILE`` and exits. ``first_frame_s`` is the median over runs
of (that time − the time just before spawning); ``exit_s`` (spawn → process gone) is reported too. It
also checks that no heavy module (torch, llama_cpp, transformers, …) was imported before the first
frame, using ``-X importtime``.

    python bench/startup.py --json          # one JSON line; budget: first_frame_s <= 1.0
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import pty
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path

HEAVY = ("torch", "transformers", "peft", "llama_cpp", "sentence_transformers", "openai", "anthropic")
BUDGET_S = 1.0


def _drain(fd: int) -> None:
    while True:
        try:
            if not os.read(fd, 65536):
                return
        except OSError:
            return


def one_run(repo: Path, home: Path, importtime: bool = False, timeout: float = 30.0) -> dict[str, object]:
    frame_file = home / "first_frame.txt"
    frame_file.unlink(missing_ok=True)
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 36, 120, 0, 0))
    env = {
        **os.environ,
        "BDC_HOME": str(home),
        "BDC_EXIT_AFTER_FIRST_FRAME": "1",
        "BDC_FIRST_FRAME_FILE": str(frame_file),
        "TERM": "xterm-256color",
        "PYTHONPATH": str(repo) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    argv = [sys.executable, *(["-X", "importtime"] if importtime else []), "-m", "bdc_assistant"]
    reader = threading.Thread(target=_drain, args=(master,), daemon=True)
    t0 = time.time()
    proc = subprocess.Popen(
        argv,
        stdin=slave,
        stdout=slave,
        stderr=subprocess.PIPE if importtime else slave,
        env=env,
        cwd=repo,
        start_new_session=True,
    )
    os.close(slave)
    reader.start()
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise SystemExit(f"startup bench: the app did not exit within {timeout:.0f} s") from None
    exit_s = time.time() - t0
    os.close(master)
    if not frame_file.exists():
        raise SystemExit(f"startup bench: no first frame recorded (exit status {proc.returncode})")
    first = float(frame_file.read_text().strip()) - t0
    out: dict[str, object] = {"first_frame_s": first, "exit_s": exit_s, "rc": proc.returncode}
    if importtime and err:
        mods = {
            line.split("|")[-1].strip() for line in err.decode(errors="replace").splitlines() if "|" in line
        }
        out["heavy_imported"] = sorted(m for m in mods if m.split(".")[0] in HEAVY)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json", action="store_true", help="print one JSON line")
    args = ap.parse_args()
    repo = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory(prefix="bdc-startup-") as tmp:
        home = Path(tmp)
        one_run(repo, home)  # warm the OS file cache and .pyc files; not counted
        runs = [one_run(repo, home) for _ in range(args.runs)]
        check = one_run(repo, home, importtime=True)
    firsts = [float(r["first_frame_s"]) for r in runs]  # type: ignore[arg-type]
    result = {
        "bench": "tui_startup",
        "first_frame_s": round(statistics.median(firsts), 4),
        "first_frame_runs_s": [round(x, 4) for x in firsts],
        "exit_s": round(statistics.median(float(r["exit_s"]) for r in runs), 4),  # type: ignore[arg-type]
        "heavy_imported_before_first_frame": check.get("heavy_imported", []),
        "budget_s": BUDGET_S,
        "ok": statistics.median(firsts) <= BUDGET_S and not check.get("heavy_imported"),
        "python": sys.version.split()[0],
    }
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:36} {v}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
