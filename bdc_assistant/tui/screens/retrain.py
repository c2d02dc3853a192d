"""Retrain: how many trajectories are stored, GPU or not, run the trainer in the background with
progress, then compare the new bundle's evaluation with the current one and switch or roll back.

The trainer runs as a subprocess (``bdc retrain``): the app never imports ``trainer/`` (DESIGN §3), a
crash in training cannot take the UI down, and its progress is whatever lines it prints.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, DataTable, Footer, Log, ProgressBar, Static

from ...errors import BdcError
from ..workers import start_worker

if TYPE_CHECKING:
    from ..engine import RetrainEngine

_FRACTION = re.compile(r"(?:step|epoch|iter|it|progress)?\s*(\d+)\s*/\s*(\d+)", re.IGNORECASE)


def parse_progress(line: str) -> tuple[int, int] | None:
    """(done, total) from a trainer line: JSON ``{"step": 3, "total": 10}`` or text like ``step 3/10``."""
    line = line.strip()
    if line.startswith("{"):
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            data = None
        if isinstance(data, dict):
            done = data.get("step", data.get("done"))
            total = data.get("total", data.get("steps"))
            if isinstance(done, int) and isinstance(total, int) and total > 0:
                return done, total
            return None
    m = _FRACTION.search(line)
    if m and int(m.group(2)) > 0 and int(m.group(1)) <= int(m.group(2)):
        return int(m.group(1)), int(m.group(2))
    return None


def parse_result(lines: list[str]) -> dict[str, Any] | None:
    """The trainer's final JSON line (the last line that parses as an object), if any."""
    for line in reversed(lines):
        line = line.strip()
        if line.startswith("{"):
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(data, dict) and "step" not in data:
                return data
    return None


def comparison_rows(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Metric rows (name, current, new) from ``{"current": {...}, "new": {...}}`` style results."""
    cur = result.get("current") or result.get("current_eval") or {}
    new = result.get("new") or result.get("new_eval") or result.get("eval") or {}
    if not isinstance(cur, dict) or not isinstance(new, dict):
        return []
    keys = [k for k in new if isinstance(new[k], int | float)] + [
        k for k in cur if k not in new and isinstance(cur[k], int | float)
    ]

    def fmt(v: Any) -> str:
        return f"{v:.3f}" if isinstance(v, float) else ("–" if v is None else str(v))

    return [(k, fmt(cur.get(k)), fmt(new.get(k))) for k in keys]


class TrainerLine(Message):
    def __init__(self, line: str | None, code: int | None = None) -> None:
        super().__init__()
        self.line, self.code = line, code


class RetrainScreen(Screen[None]):
    DEFAULT_CSS = """
    RetrainScreen #rt-status { padding: 0 1; height: auto; }
    RetrainScreen #rt-buttons { height: auto; padding: 0 1; }
    RetrainScreen #rt-buttons Button { margin-right: 2; }
    RetrainScreen ProgressBar { padding: 0 1; }
    RetrainScreen Log { height: 1fr; border: round $primary 40%; margin: 0 1; }
    RetrainScreen DataTable { height: auto; max-height: 10; margin: 0 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Back")]

    def __init__(self, engine: RetrainEngine, min_new: int) -> None:
        """``min_new``: new trajectories the retrain settings want before a retrain is worth it."""
        super().__init__()
        self.engine, self.min_new = engine, min_new
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[str] = []
        self.result: dict[str, Any] | None = None
        self.force = False
        self.started_at = 0.0
        self.log_pos: tuple[Path, int] | None = None

    def compose(self) -> ComposeResult:
        yield Static("retrain · reading status…", id="rt-status")
        with Horizontal(id="rt-buttons"):
            yield Button("Start training", id="rt-start", variant="primary", disabled=True)
            yield Button("Stop", id="rt-stop", disabled=True)
            yield Button("Switch to new bundle", id="rt-switch", variant="success", disabled=True)
            yield Button("Roll back", id="rt-rollback", variant="warning")
        yield ProgressBar(
            total=100, id="rt-progress", show_eta=False
        )  # determinate: no pulsing bar when idle
        table: DataTable[Text] = DataTable(id="rt-compare")
        table.add_columns("metric", "current", "new")
        yield table
        yield Log(id="rt-log", highlight=False)
        yield Footer()

    def on_mount(self) -> None:
        start_worker(
            self,
            self._status_worker,
            group="retrain-status",
            what="Reading the retrain status",
            on_error=lambda msg: self.app.call_from_thread(self._show_status, msg, False),
        )

    def _status_worker(self) -> None:
        st = self.engine.retrain_status()
        need = self.min_new
        n = "unknown (no trajectory store yet)" if st.trajectories is None else str(st.trajectories)
        if st.new_since_active is not None:
            n += f", {st.new_since_active} new since the active bundle"
            self.force = st.new_since_active < need
        text = (
            f"trajectories stored: {n} (retraining wants ≥ {need} new) · "
            f"GPU: {'yes (CUDA)' if st.gpu else 'no (CPU training is slow)'} · "
            f"active bundle: {st.active_bundle or 'none'}"
        )
        self.app.call_from_thread(self._show_status, text, True)

    def _show_status(self, text: str, ok: bool) -> None:
        self.query_one("#rt-status", Static).update(Text(text))
        start = self.query_one("#rt-start", Button)
        start.disabled = not ok
        if self.force:
            start.label = "Start anyway (too few new)"

    @on(Button.Pressed, "#rt-start")
    def start(self) -> None:
        if self.proc is not None:
            return
        import time

        self.started_at = time.time()
        self.log_pos = None
        self.set_interval(1.0, self._tail_trainer_log, name="rt-tail")
        self._launch(self.engine.retrain_command(force=self.force))

    def _tail_trainer_log(self) -> None:
        """`bdc retrain` sends the trainer's output to state_dir/retrain/<time>/retrain.log: follow it."""
        if self.proc is None:
            return
        from ...paths import app_paths

        if self.log_pos is None:
            logs = [
                p
                for p in (app_paths().state_dir / "retrain").glob("*/retrain.log")
                if p.stat().st_mtime >= self.started_at - 1
            ]
            if not logs:
                return
            self.log_pos = (max(logs, key=lambda p: p.stat().st_mtime), 0)
        path, pos = self.log_pos
        try:
            with path.open("r", encoding="utf-8", errors="replace") as fh:
                fh.seek(pos)
                chunk = fh.read()
                self.log_pos = (path, fh.tell())
        except OSError:
            return
        for line in chunk.splitlines():
            self.on_trainer_line(TrainerLine(line))

    def _launch(self, argv: list[str]) -> None:
        log = self.query_one(Log)
        log.write_line("$ " + " ".join(argv))
        try:
            self.proc = subprocess.Popen(
                argv,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                bufsize=1,
                stdin=subprocess.DEVNULL,
            )
        except OSError as exc:
            self.notify(f"Could not start {argv[0]}: {exc.strerror}.", severity="error")
            self.proc = None
            return
        self.lines = []
        self.query_one("#rt-start", Button).disabled = True
        self.query_one("#rt-stop", Button).disabled = False
        proc = self.proc

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                self.post_message(TrainerLine(line.rstrip("\n")))
            self.post_message(TrainerLine(None, proc.wait()))

        start_worker(
            self,
            pump,
            group="retrain",
            what="Reading the trainer's output",
            on_error=lambda msg: self.post_message(TrainerLine(msg)),
        )

    def on_trainer_line(self, msg: TrainerLine) -> None:
        log = self.query_one(Log)
        bar = self.query_one(ProgressBar)
        if msg.line is not None:
            self.lines.append(msg.line)
            log.write_line(msg.line)
            got = parse_progress(msg.line)
            if got:
                bar.update(total=got[1], progress=got[0])
            return
        self.proc = None
        self.query_one("#rt-stop", Button).disabled = True
        self.query_one("#rt-start", Button).disabled = False
        if msg.code != 0:
            log.write_line(f"trainer exited with status {msg.code}")
            self.notify(
                f"Training failed (exit {msg.code}); the current bundle is unchanged.", severity="error"
            )
            return
        self.result = parse_result(self.lines)
        bar.update(total=100, progress=100)
        new_id = self._new_bundle()
        if self.result and self.result.get("message"):
            log.write_line(str(self.result["message"]))
        if new_id is None:
            self.notify(str((self.result or {}).get("message") or "No new bundle was produced."), timeout=6)
            return
        compare: dict[str, Any] = self.result or {}
        if not comparison_rows(compare):
            try:
                compare = self.engine.compare_bundles(new_id)
            except BdcError as exc:
                log.write_line(str(exc))
        table = self.query_one(DataTable)
        table.clear()
        for row in comparison_rows(compare):
            table.add_row(*(Text(c) for c in row))
        switched = bool((self.result or {}).get("switched"))
        self.query_one("#rt-switch", Button).disabled = switched
        self.notify(
            f"Bundle {new_id} is active; Roll back returns to the previous one."
            if switched
            else f"Bundle {new_id} is registered: compare, then Switch or keep the current bundle.",
            timeout=6,
        )

    def _new_bundle(self) -> str | None:
        r = self.result or {}
        name = r.get("new_bundle") or r.get("bundle")
        return str(name) if name else None

    @on(Button.Pressed, "#rt-stop")
    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()

    @on(Button.Pressed, "#rt-switch")
    def switch(self) -> None:
        name = self._new_bundle()
        if name:
            self._launch(self.engine.bundles_command("use", name))

    @on(Button.Pressed, "#rt-rollback")
    def rollback(self) -> None:
        if self.proc is None:
            self._launch(self.engine.bundles_command("rollback"))

    async def action_cancel(self) -> None:
        self.app.pop_screen()
