"""Snapshots of the main screens at two terminal sizes (pytest-textual-snapshot).

Regenerate after an intended change with ``pytest tests/tui/test_snapshots.py --snapshot-update`` and
review the SVGs (``tests/tui/__snapshots__/``) before committing them.
"""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

from bdc_assistant.config import load_settings
from bdc_assistant.store.history import open_history
from bdc_assistant.tui.app import BdcApp
from bdc_assistant.tui.widgets import ProblemEditor
from tests.tui.fakes import FakeEngine
from tests.tui.test_app import wait_until

SIZES = [pytest.param((100, 30), id="100x30"), pytest.param((150, 44), id="150x44")]


@pytest.fixture(autouse=True)
def _utc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()


def _app(theme: str = "dark", **engine_kw: Any) -> BdcApp:
    settings = load_settings()
    settings.tui.theme = theme  # type: ignore[assignment]
    return BdcApp(settings, FakeEngine(**engine_kw), open_history())


async def _steady(pilot: Any) -> None:
    """No blinking cursors: a blink phase caught mid-way makes a snapshot flaky."""
    for screen in pilot.app.screen_stack:
        for widget in screen.query("Input, TextArea"):
            widget.cursor_blink = False
    # On a loaded machine one pause can leave a layout pass or a notification's removal pending: let the
    # scheduled work and animations finish, then settle twice more.
    await pilot.wait_for_scheduled_animations()
    for _ in range(3):
        await pilot.pause()
    # Then wait for the frame itself to stop changing (two equal renders in a row, a bounded number of tries).
    previous = pilot.app.export_screenshot()
    for _ in range(20):
        await pilot.pause(0.05)
        current = pilot.app.export_screenshot()
        if current == previous:
            return
        previous = current


async def _ready(pilot: Any) -> None:
    app = pilot.app
    await wait_until(pilot, lambda: app.chat.info.state == "ready")
    await _steady(pilot)


async def _answered(pilot: Any) -> None:
    app = pilot.app
    await _ready(pilot)
    app.main.query_one(ProblemEditor).text = "Read two integers a and b from stdin and print a + b."
    await pilot.press("enter")
    await wait_until(pilot, lambda: app.chat.current is None and app.chat.blocks and app.chat.example_tests)
    app.action_run_tests()
    await wait_until(pilot, lambda: app.chat.last_verdicts is not None)
    app.clear_notifications()
    await _steady(pilot)


@pytest.mark.parametrize("size", SIZES)
def test_main_empty(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(_app(), terminal_size=size, run_before=_ready)


@pytest.mark.parametrize("size", SIZES)
def test_main_answered_with_mixture_and_verdicts(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(_app(), terminal_size=size, run_before=_answered)


@pytest.mark.parametrize("size", SIZES)
def test_main_answered_light_theme(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(_app("light"), terminal_size=size, run_before=_answered)


@pytest.mark.parametrize("size", SIZES)
def test_deep_consent_dialog(snap_compare: Any, size: tuple[int, int]) -> None:
    async def run_before(pilot: Any) -> None:
        await _answered(pilot)
        await pilot.press("ctrl+d")
        await wait_until(pilot, lambda: type(pilot.app.screen).__name__ == "ConsentDialog")
        # The dialog's Markdown mounts its blocks in a later pass and the Refuse button takes focus on mount:
        # take the frame only once both happened (a CI run under load caught the dialog half-built).
        dialog = pilot.app.screen
        await wait_until(
            pilot,
            lambda: bool(dialog.query("Markdown > *")) and getattr(pilot.app.focused, "id", None) == "refuse",
        )
        pilot.app.clear_notifications()
        await _steady(pilot)

    assert snap_compare(_app(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_deep_screen_after_a_run(snap_compare: Any, size: tuple[int, int]) -> None:
    async def run_before(pilot: Any) -> None:
        app = pilot.app
        await _answered(pilot)
        await pilot.press("ctrl+d")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "DeepScreen")
        await pilot.click("#start")
        await wait_until(pilot, lambda: app.engine.deep_runs == 1 and not app.screen.running)
        app.screen.set_focus(None)
        await _steady(pilot)

    assert snap_compare(_app(consent=True), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_history_screen(snap_compare: Any, size: tuple[int, int]) -> None:
    async def run_before(pilot: Any) -> None:
        app = pilot.app
        await _answered(pilot)
        app.history._conn.execute("UPDATE conversations SET created = 1.7e9, updated = 1.7e9")
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "HistoryScreen")
        await pilot.press(*"integers")
        await pilot.pause(0.2)
        await _steady(pilot)

    assert snap_compare(_app(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_keys_help(snap_compare: Any, size: tuple[int, int]) -> None:
    async def run_before(pilot: Any) -> None:
        await _ready(pilot)
        await pilot.press("f1")
        await pilot.pause(0.2)
        await _steady(pilot)

    assert snap_compare(_app(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_settings_screen(snap_compare: Any, size: tuple[int, int]) -> None:
    async def run_before(pilot: Any) -> None:
        await _ready(pilot)
        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: type(pilot.app.screen).__name__ == "SettingsScreen")
        pilot.app.screen.set_focus(None)
        await _steady(pilot)

    assert snap_compare(_app(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_retrain_screen(snap_compare: Any, size: tuple[int, int]) -> None:
    async def run_before(pilot: Any) -> None:
        app = pilot.app
        await _ready(pilot)
        await pilot.press("f4")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "RetrainScreen")
        await wait_until(pilot, lambda: not app.screen.query_one("#rt-start").disabled)
        app.screen.set_focus(None)
        await _steady(pilot)

    assert snap_compare(_app(), terminal_size=size, run_before=run_before)


def test_snapshots_are_committed(request: pytest.FixtureRequest) -> None:
    if request.config.getoption("--snapshot-update"):
        pytest.skip("snapshots are being written")
    here = os.path.join(os.path.dirname(__file__), "__snapshots__", "test_snapshots")
    assert os.path.isdir(here) and len(os.listdir(here)) >= 18
