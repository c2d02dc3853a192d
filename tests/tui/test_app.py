"""Pilot tests of the app with scripted engines: send, cancel, copy, save, run tests, deep consent,
history search / reopen / export, settings, retrain. Real SQLite, real subprocesses, no model."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable, Input, Static
from textual.widgets._toast import Toast

from bdc_assistant.config import load_settings
from bdc_assistant.logs import setup_logging
from bdc_assistant.store.history import open_history
from bdc_assistant.tui.app import BdcApp
from bdc_assistant.tui.commands import palette_commands
from bdc_assistant.tui.tests_panel import TestsPanel
from bdc_assistant.tui.widgets import AnswerView, ProblemEditor
from bdc_assistant.types import SolverEvent, TestCase, ThoughtToken
from tests.tui.fakes import CODE, FakeEngine

SIZE = (120, 36)


async def wait_until(pilot: Any, predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await pilot.pause(0.02)


def make_app(engine: FakeEngine | None = None, history: bool = True, **kw: Any) -> BdcApp:
    return BdcApp(load_settings(), engine or FakeEngine(), open_history() if history else None, **kw)


def drive(app: BdcApp, body: Callable[[Any], Awaitable[None]], *, notifications: bool = False) -> None:
    async def main() -> None:
        async with app.run_test(size=SIZE, notifications=notifications) as pilot:
            await pilot.pause()
            await body(pilot)

    asyncio.run(main())


async def ask(pilot: Any, app: BdcApp, text: str = "add two numbers") -> None:
    editor = app.main.query_one(ProblemEditor)
    editor.focus()
    editor.text = text
    await pilot.press("enter")


def test_send_streams_plan_and_code_and_records_history() -> None:
    app = make_app()

    async def body(pilot: Any) -> None:
        editor = app.main.query_one(ProblemEditor)
        await pilot.press("a", "ctrl+j", "b")
        assert editor.text == "a\nb"  # Ctrl+J is a newline, not a send
        editor.text = ""
        await ask(pilot, app, "Read two ints\nand print their sum")
        await wait_until(pilot, lambda: app.chat.current is None and len(app.chat.answers) == 1)
        assert editor.text == ""
        view = app.main.query_one(AnswerView)
        assert "Read two integers" in view.plan.source
        assert view.code.source.startswith("```python\n") and "return a + b" in view.code.source
        assert app.chat.blocks[0].source == CODE
        assert "code [1]" in str(view.code_label.render())
        assert app.chat.info.backend == "llamacpp" and app.chat.tokens_per_s == 24.0
        assert app.main.query_one("#mix-bars").render().plain.startswith("greedy")  # type: ignore[attr-defined]
        await wait_until(pilot, lambda: len(app.chat.example_tests) == 1)
        conv = app.history.load(app.chat.conversation_id)  # type: ignore[union-attr,arg-type]
        assert [m.role for m in conv.messages] == ["user", "assistant"]
        assert conv.messages[0].content == "Read two ints\nand print their sum"
        assert conv.messages[1].gates is not None

    drive(app, body)


def test_enter_sends_false_swaps_keys() -> None:
    app = make_app()
    app.settings.tui.enter_sends = False

    async def body(pilot: Any) -> None:
        editor = app.main.query_one(ProblemEditor)
        await pilot.press("x", "enter", "y")
        assert editor.text == "x\ny" and app.chat.current is None and not app.chat.answers
        await pilot.press("ctrl+j")
        await wait_until(pilot, lambda: len(app.chat.answers) == 1)

    drive(app, body)


def test_escape_cancels_at_once_and_restores_the_prompt() -> None:
    engine = FakeEngine(hold_after=2)
    app = make_app(engine)

    async def body(pilot: Any) -> None:
        await ask(pilot, app, "sum please")
        await wait_until(
            pilot, lambda: app.chat.current is not None and app.chat.current.code.count("\n") >= 2
        )
        await pilot.press("escape")
        # the view is detached before the backend even notices
        assert app.chat.current is None
        view = app.main.query_one(AnswerView)
        assert "cancelled" in str(view.stats.render())
        assert app.main.query_one(ProblemEditor).text == "sum please"
        await wait_until(pilot, lambda: engine.stopped_at is not None)
        assert engine.stopped_at == 2  # the solver saw the cancel token and stopped generating
        await pilot.pause(0.1)
        assert (
            app.chat.blocks[0].source == "def add(a, b):\n    return a + b\n"
        )  # the partial code, nothing after
        assert app.chat.answers[-1].cancelled
        conv = app.history.load(app.chat.conversation_id)  # type: ignore[union-attr,arg-type]
        assert conv.messages[-1].cancelled and len(conv.messages) == 2
        # a new question works after a cancel
        engine.hold_after = None
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.chat.current is None and len(app.chat.blocks) == 2)
        assert app.chat.blocks[1].source == CODE

    drive(app, body)


def test_copy_block_by_key_palette_and_slash(monkeypatch: pytest.MonkeyPatch) -> None:
    app = make_app()

    async def body(pilot: Any) -> None:
        await pilot.press("ctrl+y")  # nothing to copy yet: a warning, no crash
        assert app.chat.last_copy is None
        await ask(pilot, app)
        await wait_until(pilot, lambda: app.chat.current is None and app.chat.blocks)
        await pilot.press("ctrl+y")
        assert app.clipboard == CODE and app.chat.last_copy == CODE
        app.copy_to_clipboard("")
        commands = [title for title, _, _ in palette_commands(app)]
        assert "Copy code block 1" in commands and "Run tests on code block 1" in commands
        assert {
            "Deep mode",
            "History",
            "Retrain",
            "Settings",
            "Key help",
            "Toggle dark / light theme",
        } <= set(commands)
        editor = app.main.query_one(ProblemEditor)
        editor.text = "/copy 1"
        await pilot.press("enter")
        assert app.clipboard == CODE and editor.text == ""
        editor.text = "/copy 7"
        await pilot.press("enter")
        assert app.clipboard == CODE  # unknown block: unchanged

    drive(app, body)


def test_save_block_writes_the_raw_source(tmp_path: Path) -> None:
    app = make_app()
    target = tmp_path / "out" / "sol.py"

    async def body(pilot: Any) -> None:
        await ask(pilot, app)
        await wait_until(pilot, lambda: app.chat.current is None and app.chat.blocks)
        await pilot.press("ctrl+s")
        await pilot.pause()
        dialog_input = app.screen.query_one("#prompt-input")
        dialog_input.value = str(target)  # type: ignore[attr-defined]
        await pilot.press("enter")
        await wait_until(pilot, target.exists)
        assert target.read_text() == CODE.rstrip() + "\n"

    drive(app, body)


def test_run_tests_shows_a_verdict_per_test_including_user_tests() -> None:
    engine = FakeEngine()
    app = make_app(engine)

    async def body(pilot: Any) -> None:
        await ask(pilot, app)
        await wait_until(
            pilot, lambda: app.chat.current is None and app.chat.blocks and app.chat.example_tests
        )
        await pilot.press("ctrl+n")
        await pilot.pause()
        app.screen.query_one("#test-input").text = "2 2\n"  # type: ignore[attr-defined]
        app.screen.query_one("#test-output").text = "5\n"  # type: ignore[attr-defined]
        await pilot.click("#ok")
        await wait_until(pilot, lambda: len(app.chat.user_tests) == 1)
        await pilot.press("ctrl+t")
        await wait_until(pilot, lambda: app.chat.last_verdicts is not None)
        assert [str(v.status) for v in app.chat.last_verdicts or []] == ["pass", "wrong"]
        code, tests = engine.tests_run[-1]
        assert code == CODE and [t.origin for t in tests] == ["statement", "user"]
        table = app.main.query_one(TestsPanel).query_one("#tests-table")
        rows = [table.get_row_at(i) for i in range(table.row_count)]  # type: ignore[attr-defined]
        assert str(rows[0][3]).startswith("pass") and str(rows[1][3]).startswith("wrong")
        conv = app.history.load(app.chat.conversation_id)  # type: ignore[union-attr,arg-type]
        assert conv.messages[-1].role == "tests" and conv.messages[-1].content == "1/2 tests passed"

    drive(app, body)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    attempts: list[Any] = []

    def guard(self: socket.socket, address: Any) -> None:
        attempts.append(address)
        raise AssertionError(f"network connection attempted to {address!r}")

    monkeypatch.setattr(socket.socket, "connect", guard)
    monkeypatch.setattr(socket.socket, "connect_ex", guard)
    return attempts


def test_deep_consent_refused_means_no_network_and_no_run(no_network: list[Any]) -> None:
    engine = FakeEngine(consent=False)
    app = make_app(engine)

    async def body(pilot: Any) -> None:
        await ask(pilot, app)
        await wait_until(pilot, lambda: app.chat.current is None and app.chat.blocks)
        await pilot.press("ctrl+d")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "ConsentDialog")
        await pilot.click("#refuse")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "DeepScreen")
        assert "consent refused" in str(app.screen.query_one("#deep-state").render())
        assert app.screen.query_one("#start").disabled
        await pilot.press("ctrl+g")  # Start is inert without consent
        await pilot.pause(0.2)
        assert engine.deep_runs == 0 and engine.consent_recorded == 0 and app.chat.deep_state == "refused"

    drive(app, body)
    assert no_network == []


def test_deep_consent_allowed_runs_and_draws_the_tree() -> None:
    engine = FakeEngine(consent=False)
    app = make_app(engine)

    async def body(pilot: Any) -> None:
        await ask(pilot, app)
        await wait_until(pilot, lambda: app.chat.current is None and app.chat.blocks)
        await pilot.press("ctrl+d")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "ConsentDialog")
        await pilot.click("#allow")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "DeepScreen")
        assert engine.consent_recorded == 1
        await pilot.click("#start")
        await wait_until(pilot, lambda: engine.deep_runs == 1 and not app.screen.running)  # type: ignore[attr-defined]
        # the final refresh of the state line and the tree may land a frame after the run ends
        await wait_until(pilot, lambda: "solved" in str(app.screen.query_one("#deep-state").render()))
        tree = app.screen.query_one("#tree")
        labels = [str(n.label) for n in tree.root.children[0].children]  # type: ignore[attr-defined]
        assert any("pruned" in x and "refined" in x for x in labels)
        state = str(app.screen.query_one("#deep-state").render())
        assert (
            "calls 6/60" in state and "tokens 1,200/∞" in state and "$0.0123" in state and "solved" in state
        )
        assert engine.deep_requests[-1].method == "mc-toa"
        best = app.screen.query_one("#deep-best")
        assert "print(sum(map(int" in best.source  # type: ignore[attr-defined]
        local = app.screen.query_one("#deep-local")
        assert "return a + b" in local.source  # type: ignore[attr-defined]
        conv = app.history.load(app.chat.conversation_id)  # type: ignore[union-attr,arg-type]
        assert conv.messages[-1].role == "deep" and conv.messages[-1].deep_run_id == "run-1"

    drive(app, body)


def test_the_chosen_search_method_reaches_the_engine() -> None:
    engine = FakeEngine(consent=True)
    app = make_app(engine)

    async def body(pilot: Any) -> None:
        await ask(pilot, app)
        await wait_until(pilot, lambda: app.chat.current is None and app.chat.blocks)
        await pilot.press("ctrl+d")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "DeepScreen")
        app.screen.query_one("#method").value = "reflexion"  # type: ignore[attr-defined]
        await pilot.pause()
        await pilot.click("#start")
        await wait_until(pilot, lambda: engine.deep_runs == 1 and not app.screen.running)  # type: ignore[attr-defined]
        assert engine.deep_requests[-1].method == "reflexion"
        await wait_until(pilot, lambda: "reflexion · " in str(app.screen.query_one("#deep-state").render()))

    drive(app, body)


def test_unreadable_provider_presets_say_so_and_leave_deep_mode_inert() -> None:
    app = make_app(FakeEngine(presets_broken="The provider presets file x.toml is not valid TOML."))

    async def body(pilot: Any) -> None:
        await pilot.press("ctrl+d")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "DeepScreen")
        assert "not valid TOML" in str(app.screen.query_one("#deep-state").render())
        assert app.screen.query_one("#start").disabled

    drive(app, body)


def test_history_search_reopen_and_export(bdc_home: Path) -> None:
    store = open_history()
    old = store.new_conversation("Fibonacci numbers")
    store.add_user(old, "Fibonacci numbers up to n")
    from tests.tui.test_history import _answer

    store.add_answer(old, _answer("def fib(n):\n    return n\n", "use memoization carefully"))
    store.close()
    app = make_app()

    async def body(pilot: Any) -> None:
        await ask(pilot, app)
        await wait_until(pilot, lambda: app.chat.current is None and app.chat.blocks)
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "HistoryScreen")
        screen = app.screen
        assert len(screen.row_conversations) == 2  # type: ignore[attr-defined]
        await pilot.press(*"memoiz")
        await wait_until(pilot, lambda: screen.row_conversations == [old])  # type: ignore[attr-defined]
        await pilot.press("ctrl+e")
        exported = bdc_home / "data" / "exports" / f"conversation-{old}.md"
        await wait_until(pilot, exported.exists)
        assert "def fib(n):" in exported.read_text()
        await pilot.press("enter")
        await wait_until(
            pilot, lambda: app.chat.conversation_id == old and type(app.screen).__name__ == "MainScreen"
        )
        assert app.chat.problem == "Fibonacci numbers up to n"
        assert [b.source for b in app.chat.blocks] == ["def fib(n):\n    return n\n"]
        assert "memoization" in app.main.query_one(AnswerView).plan.source

    drive(app, body)


def test_settings_screen_saves_and_applies_theme(bdc_home: Path) -> None:
    app = make_app()

    async def body(pilot: Any) -> None:
        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "SettingsScreen")
        app.screen.query_one("#theme").value = "light"  # type: ignore[attr-defined]
        app.screen.query_one("#threads").value = "2"  # type: ignore[attr-defined]
        await pilot.click("#save")
        await wait_until(pilot, lambda: (bdc_home / "config" / "config.toml").exists())
        assert app.theme == "textual-light"
        app.screen.query_one("#threads").value = "many"  # type: ignore[attr-defined]
        await pilot.click("#save")
        await pilot.pause()

    drive(app, body)
    settings = load_settings()
    assert settings.tui.theme == "light" and settings.backend.threads == 2


def test_retrain_runs_trainer_subprocess_with_progress_and_comparison() -> None:
    app = make_app()

    async def body(pilot: Any) -> None:
        await pilot.press("f4")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "RetrainScreen")
        screen = app.screen
        await wait_until(pilot, lambda: not screen.query_one("#rt-start").disabled)
        assert "trajectories stored: 12" in str(screen.query_one("#rt-status").render())
        await pilot.click("#rt-start")
        await wait_until(pilot, lambda: screen.result is not None, timeout=20)  # type: ignore[attr-defined]
        table = screen.query_one("#rt-compare")
        assert [str(c) for c in table.get_row_at(0)] == ["pass@1", "0.100", "0.200"]  # type: ignore[attr-defined]
        assert not screen.query_one("#rt-switch").disabled
        bar = screen.query_one("#rt-progress")
        assert bar.progress == bar.total  # type: ignore[attr-defined]
        await pilot.click("#rt-switch")
        await wait_until(pilot, lambda: any("bundles use b2" in x for x in screen.lines), timeout=20)  # type: ignore[attr-defined]

    drive(app, body)


def test_first_frame_flag_exits_without_warming(tmp_path: Path) -> None:
    frame = tmp_path / "frame.txt"
    engine = FakeEngine()
    calls: list[int] = []
    engine.warm_up = lambda: calls.append(1)  # type: ignore[method-assign,assignment,return-value]
    app = make_app(engine, history=False, exit_after_first_frame=True, first_frame_file=frame)

    async def main() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause(0.2)

    asyncio.run(main())
    assert frame.exists() and float(frame.read_text()) > 0 and calls == []


def test_brackets_in_user_text_are_shown_not_parsed_as_markup() -> None:
    engine = FakeEngine(
        plan="1. use [bold]x[/] and [red\n", examples=[TestCase("[1, 2]\n", "3\n", origin="statement")]
    )
    app = make_app(engine)
    problem = "sum of [a, b] [/] [link=x]"

    async def body(pilot: Any) -> None:
        await ask(pilot, app, problem)
        await wait_until(
            pilot, lambda: app.chat.current is None and app.chat.blocks and app.chat.example_tests
        )
        view = app.main.query_one(AnswerView)
        assert str(view.query_one(".problem", Static).render()) == problem
        assert "1. use [bold]x[/] and [red" in view.plan.source
        cell = app.main.query_one(TestsPanel).query_one(DataTable).get_row_at(0)[2]
        assert str(cell) == "[1, 2]⏎"
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "HistoryScreen")
        assert str(app.screen.query_one(DataTable).get_row_at(0)[1]) == problem
        await pilot.press(*"[/]")
        await pilot.pause(0.2)
        assert app.screen.query_one(Input).value == "[/]"
        app.notify("path [/tmp/x] failed [")
        await wait_until(pilot, lambda: bool(app.screen.query(Toast)))
        toasts = [str(t.render()) for t in app.screen.query(Toast)]
        assert any("path [/tmp/x] failed [" in t for t in toasts), toasts

    drive(app, body, notifications=True)  # toasts drawn, as in the terminal


def test_slash_new_starts_a_fresh_conversation() -> None:
    app = make_app()

    async def body(pilot: Any) -> None:
        await ask(pilot, app)
        await wait_until(pilot, lambda: app.chat.current is None and app.chat.blocks)
        first = app.chat.conversation_id
        editor = app.main.query_one(ProblemEditor)
        editor.text = "/new"
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.chat.conversation_id is None and not app.chat.blocks)
        assert not app.main.query(AnswerView) and app.main.query("#welcome")
        await ask(pilot, app, "another")
        await wait_until(pilot, lambda: app.chat.current is None and app.chat.blocks)
        assert app.chat.conversation_id not in (None, first)

    drive(app, body)


def test_command_palette_runs_copy_code_block_n() -> None:
    app = make_app()

    async def body(pilot: Any) -> None:
        await ask(pilot, app)
        await wait_until(pilot, lambda: app.chat.current is None and app.chat.blocks)
        await pilot.press("ctrl+p")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "CommandPalette")
        await pilot.press(*"Copy code block 1")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.chat.last_copy == CODE)

    drive(app, body)


def test_clicking_an_answer_shows_its_own_mixture() -> None:
    app = make_app()

    async def body(pilot: Any) -> None:
        await ask(pilot, app)
        await wait_until(pilot, lambda: app.chat.current is None and len(app.chat.answers) == 1)
        panel = app.main.query_one("#mixture")
        first = app.main.query_one(AnswerView)
        panel.show(None, None)  # type: ignore[attr-defined]
        assert str(panel.query_one("#mix-summary").render()).startswith("plain base model")
        await pilot.click(AnswerView, offset=(2, 0))
        await wait_until(pilot, lambda: str(panel.query_one("#mix-summary").render()).startswith("K=3"))
        assert first.gates is not None and first.gates.cluster_names[0] == "greedy"

    drive(app, body)


@pytest.fixture
def log_file(bdc_home: Path) -> Any:
    path = setup_logging()
    yield path
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "baseFilename", None) == str(path)]:
        root.removeHandler(handler)
        handler.close()


def test_a_failing_solver_logs_its_traceback_and_shows_one_sentence(log_file: Path) -> None:
    engine = FakeEngine()

    def broken(problem: str, cancel: Any) -> Iterator[SolverEvent]:
        yield ThoughtToken("1. Read the two numbers.\n")
        raise RuntimeError("index 7 out of range in the sampler")

    engine.solve = broken  # type: ignore[method-assign]
    app = make_app(engine)

    async def body(pilot: Any) -> None:
        await ask(pilot, app, "Sum the secret numbers 4711 and 42")
        await wait_until(pilot, lambda: app.chat.current is None)
        assert str(app.main.query_one(AnswerView).stats.render()) == (
            "The solver failed (RuntimeError: index 7 out of range in the sampler); "
            f"the traceback is in {log_file}."
        )

    drive(app, body)
    logged = log_file.read_text()
    assert "Traceback (most recent call last)" in logged and "in broken" in logged
    assert "RuntimeError: index 7 out of range in the sampler" in logged
    assert "4711" not in logged  # the problem text stays out of the log at the default level


def test_a_repair_replaces_the_streamed_code_with_the_fixed_version() -> None:
    """``Checked(repairing=True)``: the model rewrites the code after failing an example; the view shows the
    new version in place of the old, and the answer kept is the one the solver chose."""
    from dataclasses import dataclass

    from bdc_assistant.types import Answer, Checked, CodeToken, StageDone, Started

    @dataclass
    class RepairingEngine(FakeEngine):
        def solve(self, problem: str, cancel: Any) -> Iterator[SolverEvent]:
            self.solves += 1
            yield Started("llamacpp", "qwen", None, None, 1.0)
            yield StageDone("thought", "", 0, 0.0)
            yield CodeToken("def add(a, b):\n    return a - b\n")
            yield StageDone("solution", "def add(a, b):\n    return a - b\n", 8, 0.1)
            yield Checked(0, 0, 1, "Example: assert add(1, 2) == 3\nResult: wrong", True)
            yield CodeToken("def add(a, b):\n    return a + b\n")
            yield StageDone("repair", "def add(a, b):\n    return a + b\n", 8, 0.1)
            self.release.wait(20)  # the test looks at the view mid-answer
            yield Checked(1, 1, 1, "", False)
            fixed = "def add(a, b):\n    return a + b\n"
            yield Answer(problem, "", fixed, fixed, "llamacpp", "qwen", None, 16, 0.5, 32.0)

    engine = RepairingEngine()
    app = make_app(engine)

    async def body(pilot: Any) -> None:
        await ask(pilot, app, "def add(a, b):\n    '''>>> add(1, 2)\n    3'''\n")
        view = app.main.query_one(AnswerView)
        await wait_until(pilot, lambda: "return a + b" in view.code.source)
        assert "return a - b" not in view.code.source  # replaced while streaming, not only at the end
        engine.release.set()
        await wait_until(pilot, lambda: app.chat.current is None and len(app.chat.answers) == 1)
        assert "return a + b" in view.code.source and "return a - b" not in view.code.source
        assert app.chat.answers[0].code.endswith("return a + b\n")

    drive(app, body)
