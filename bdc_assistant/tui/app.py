"""The Textual app: ask, watch the mixture, run the answer on tests, reopen history, go deep, retrain.

The app consumes engine events only (``Engine`` in :mod:`.engine`). The engine warms up in a thread
worker started *after* the first frame, so the window appears before torch or llama.cpp load; a problem
sent while warming waits for it. Streaming goes through ``MarkdownStream`` (which batches fragments, so
no flicker) and ends with one full ``Markdown.update`` (the oterm #308 blank-message fix). Esc sets the
cancel token and detaches the view at once: late tokens from the backend are dropped, not drawn.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Static

from ..errors import BdcError
from ..types import Answer, CodeToken, SolverEvent, StageDone, Started, TestCase, ThoughtToken, Verdict
from .codeblocks import CodeBlock, fence
from .engine import Engine, EngineInfo
from .widgets import AnswerView, MixturePanel, ProblemEditor, StatusBar, TestsPanel

if TYPE_CHECKING:
    from textual.widgets._markdown import MarkdownStream

    from ..backends.base import CancelToken
    from ..config import Settings
    from ..store.history import HistoryStore


# ---- messages from worker threads -----------------------------------------------------------------


@dataclass
class EngineWarm(Message):
    info: EngineInfo


@dataclass
class SolverWake(Message):
    """Events are waiting in the run's inbox (at most one of these is in flight per run)."""

    run_id: int


@dataclass
class SolverEnded(Message):
    run_id: int
    error: str | None = None


@dataclass
class TestsDone(Message):
    code: str
    tests: list[TestCase]
    verdicts: list[Verdict] | None
    error: str | None = None
    __test__ = False


@dataclass
class _Run:
    """The answer being streamed now."""

    id: int
    problem: str
    cancel: CancelToken
    view: AnswerView
    plan_stream: MarkdownStream | None = None
    code_stream: MarkdownStream | None = None
    thought: str = ""
    code: str = ""
    detached: bool = False
    started: float = field(default_factory=time.monotonic)
    inbox: list[SolverEvent] = field(default_factory=list)
    wake_pending: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def put(self, event: SolverEvent) -> bool:
        """Queue an event (worker thread); True when the UI must be woken."""
        with self.lock:
            self.inbox.append(event)
            if self.wake_pending:
                return False
            self.wake_pending = True
            return True

    def take(self) -> list[SolverEvent]:
        """Everything queued so far, merged (UI thread)."""
        with self.lock:
            events, self.inbox, self.wake_pending = self.inbox, [], False
        return merge_tokens(events)


class MainScreen(Screen[None]):
    """Transcript on the left, mixture and tests on the right, the editor and status bar below."""

    DEFAULT_CSS = """
    MainScreen #body { height: 1fr; }
    MainScreen #transcript { width: 1fr; padding: 0 1; }
    MainScreen #side { width: 38%; min-width: 30; max-width: 52; border-left: vkey $primary 30%; }
    MainScreen ProblemEditor { height: 6; border: round $primary 50%; }
    MainScreen ProblemEditor:focus { border: round $accent; }
    MainScreen #welcome { color: $text-muted; padding: 1 2; }
    """

    def compose(self) -> ComposeResult:
        app = self.app
        assert isinstance(app, BdcApp)
        with Horizontal(id="body"):
            with VerticalScroll(id="transcript"):
                yield welcome()
            with Vertical(id="side"):
                yield MixturePanel(id="mixture")
                yield TestsPanel(id="tests")
        yield ProblemEditor(id="editor", enter_sends=app.settings.tui.enter_sends)
        yield StatusBar(id="status")
        yield Footer()

    def on_mount(self) -> None:
        app = self.app
        assert isinstance(app, BdcApp)
        app.refresh_status()
        self.query_one(ProblemEditor).focus()


def welcome() -> Static:
    """The first screen's hint. Plain Text, not Markdown: markdown-it is not imported before the first
    frame (it is loaded with the first answer)."""
    t = Text()
    t.append("bdc", style="bold")
    t.append(" — type a coding problem below and press ")
    t.append("Enter", style="bold")
    t.append(" (Ctrl+J for a new line).\n")
    t.append("Esc cancels · Ctrl+Y copies the last code block · Ctrl+T runs it on the problem's examples · ")
    t.append("Ctrl+P all commands · F1 keys.")
    return Static(t, id="welcome")


class BdcApp(App[None]):
    """The bdc-assistant TUI."""

    TITLE = "bdc"
    ENABLE_COMMAND_PALETTE = True
    # Ctrl+Y and Ctrl+D are also TextArea keys (redo, delete right): priority makes them ours everywhere.
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", show=True),
        Binding("ctrl+y", "copy_block", "Copy code", show=True, priority=True),
        Binding("ctrl+s", "save_block", "Save", show=True),
        Binding("ctrl+t", "run_tests", "Run tests", show=True),
        Binding("ctrl+n", "add_test", "Add test", show=False),
        Binding("ctrl+d", "deep", "Deep", show=True, priority=True),
        Binding("ctrl+r", "history", "History", show=True),
        Binding("f4", "retrain", "Retrain", show=False),
        Binding("ctrl+o", "settings", "Settings", show=False),
        Binding("ctrl+l", "new_conversation", "New", show=False),
        Binding("f1", "keys", "Keys", show=True),
        Binding("ctrl+q", "quit", "Quit", show=True, priority=True),
    ]

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        history: HistoryStore | None = None,
        *,
        config_file: Path | None = None,
        exit_after_first_frame: bool = False,
        first_frame_file: Path | None = None,
        warm_up: bool = True,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.engine = engine
        self.history = history
        self.config_file = config_file
        self.theme = "textual-light" if settings.tui.theme == "light" else "textual-dark"
        self._exit_after_first_frame = exit_after_first_frame
        self._first_frame_file = first_frame_file
        self._warm_up = warm_up
        self.info = EngineInfo()
        self.tokens_per_s: float | None = None
        self.conversation_id: int | None = None
        self.problem: str = ""
        self.user_tests: list[TestCase] = []
        self.example_tests: list[TestCase] = []
        self.blocks: list[CodeBlock] = []
        self.answers: list[Answer] = []
        self.last_verdicts: list[Verdict] | None = None
        self.last_copy: str | None = None
        self.current: _Run | None = None
        self._run_ids = 0
        self.deep_state = "off"

    # -- start-up ----------------------------------------------------------------------------------
    def get_default_screen(self) -> Screen[Any]:
        return MainScreen(id="main")

    def on_mount(self) -> None:
        self.call_after_refresh(self._first_frame)

    def _first_frame(self) -> None:
        if self._first_frame_file is not None:
            self._first_frame_file.write_text(f"{time.time():.6f}\n", encoding="utf-8")
        if self._exit_after_first_frame:
            self.exit()
            return
        if self._warm_up:
            self.run_worker(self._warm_worker, thread=True, group="warm", exit_on_error=False)

    def _warm_worker(self) -> None:
        try:
            info = self.engine.warm_up()
        except BdcError as exc:
            info = EngineInfo(state="error", detail=str(exc))
        except Exception as exc:
            info = EngineInfo(state="error", detail=f"The local solver failed to load: {exc}.")
        self.post_message(EngineWarm(info))

    def on_engine_warm(self, msg: EngineWarm) -> None:
        self.info = msg.info
        if msg.info.state == "error":
            self.notify(msg.info.detail, title="engine", severity="error", timeout=10)
        self.refresh_status()

    def refresh_status(self) -> None:
        state = "busy" if self.current is not None else self.info.state
        try:
            bar = self.screen_stack[0].query_one(StatusBar)
        except Exception:
            return
        bar.render_status(
            self.info.label, self.info.model, self.info.bundle, self.tokens_per_s, state, self.deep_state
        )

    # -- asking ------------------------------------------------------------------------------------
    @property
    def main(self) -> Screen[Any]:
        return self.screen_stack[0]

    @on(AnswerView.Selected)
    def on_answer_selected(self, msg: AnswerView.Selected) -> None:
        self.main.query_one(MixturePanel).show(msg.view.gates, msg.view.bundle)

    @on(ProblemEditor.Submitted)
    def on_submit(self, msg: ProblemEditor.Submitted) -> None:
        self.ask(msg.text)

    def ask(self, text: str) -> None:
        if self.current is not None:
            self.notify("An answer is still streaming; press Esc to cancel it first.", severity="warning")
            return
        text = text.strip("\n")
        if text.strip().startswith("/"):
            self.slash(text.strip())
            return
        editor = self.main.query_one(ProblemEditor)
        editor.clear()
        if self.history is not None:
            if self.conversation_id is None:
                self.conversation_id = self.history.new_conversation(text)
            self.history.add_user(self.conversation_id, text)
        if text != self.problem:
            self.problem = text
            self.example_tests = []
            self.last_verdicts = None
            self.run_worker(
                lambda: self._examples_worker(text), thread=True, group="examples", exit_on_error=False
            )
        self._run_ids += 1
        from ..backends.base import CancelToken

        view = AnswerView(text, len(self.answers) + 1)
        transcript = self.main.query_one("#transcript", VerticalScroll)
        for welcome in transcript.query("#welcome"):
            welcome.remove()
        transcript.mount(view)
        transcript.anchor()
        run = _Run(self._run_ids, text, CancelToken(), view)
        self.current = run
        self.refresh_status()
        self.run_worker(lambda: self._solve_worker(run), thread=True, group="solve", exit_on_error=False)

    def _solve_worker(self, run: _Run) -> None:
        try:
            for event in self.engine.solve(run.problem, run.cancel):
                if run.put(event):
                    self.post_message(SolverWake(run.id))
                if run.cancel.cancelled:
                    break
        except BdcError as exc:
            self.post_message(SolverEnded(run.id, str(exc)))
            return
        except Exception as exc:
            self.post_message(SolverEnded(run.id, f"The solver failed: {exc}."))
            return
        self.post_message(SolverEnded(run.id))

    def _examples_worker(self, text: str) -> None:
        try:
            tests = self.engine.extract_examples(text)
        except Exception:
            tests = []
        self.call_from_thread(self._set_examples, text, tests)

    def _set_examples(self, text: str, tests: list[TestCase]) -> None:
        if text == self.problem:
            self.example_tests = tests
            self._show_tests()

    async def on_solver_wake(self, msg: SolverWake) -> None:
        run = self.current
        if run is None or run.id != msg.run_id:
            return
        for ev in run.take():
            if run.detached or self.current is not run:
                return
            await self._apply(run, ev)

    async def _apply(self, run: _Run, ev: SolverEvent) -> None:
        if isinstance(ev, Started):
            self.info = replace(
                self.info, backend=ev.backend, model=ev.model, bundle=ev.bundle, state="ready"
            )
            if ev.gates is not None:
                run.view.gates, run.view.bundle = ev.gates, ev.bundle
                self.main.query_one(MixturePanel).show(ev.gates, ev.bundle)
            self.refresh_status()
        elif isinstance(ev, ThoughtToken):
            run.thought += ev.text
            if run.plan_stream is None:
                run.plan_stream = run.view.plan.get_stream(run.view.plan)
            await run.plan_stream.write(ev.text)
        elif isinstance(ev, StageDone) and ev.stage == "thought":
            await self._stop_plan(run, ev.text)
            run.view.set_stats("writing code…")
        elif isinstance(ev, CodeToken):
            if run.code_stream is None:
                await self._stop_plan(run, run.thought)
                run.code_stream = run.view.code.get_stream(run.view.code)
                await run.code_stream.write("````python\n")
            run.code += ev.text
            await run.code_stream.write(ev.text)
        elif isinstance(ev, StageDone):
            pass
        elif isinstance(ev, Answer):
            await self._finish(run, ev)

    async def _stop_plan(self, run: _Run, text: str) -> None:
        if run.plan_stream is not None:
            await run.plan_stream.stop()
            run.plan_stream = None
            await run.view.plan.update(plan_markdown(text))
        elif not run.thought and text:
            await run.view.plan.update(text.strip())

    async def _finish(self, run: _Run, ans: Answer) -> None:
        await self._stop_plan(run, ans.thought or run.thought)
        if run.code_stream is not None:
            await run.code_stream.stop()
            run.code_stream = None
        code = ans.code or run.code
        await run.view.code.update(fence(code) if code.strip() else "_(no code)_")
        if code.strip():
            block = CodeBlock(len(self.blocks) + 1, "python", code)
            self.blocks.append(block)
            run.view.set_block_number(block.number)
        self.answers.append(ans)
        self.tokens_per_s = ans.tokens_per_s or self.tokens_per_s
        kind = "cancelled" if ans.cancelled else ""
        run.view.set_stats(
            f"{ans.tokens} tokens · {ans.seconds:.1f}s · {ans.tokens_per_s:.1f} tok/s · {ans.model}"
            + (" · cancelled" if ans.cancelled else ""),
            kind,
        )
        run.view.gates, run.view.bundle = ans.gates, ans.bundle
        self.main.query_one(MixturePanel).show(ans.gates, ans.bundle)
        if self.history is not None and self.conversation_id is not None:
            self.history.add_answer(self.conversation_id, ans)
        run.detached = True

    async def on_solver_ended(self, msg: SolverEnded) -> None:
        run = self.current
        if run is None or run.id != msg.run_id:
            return
        if msg.error:
            for stream in (run.plan_stream, run.code_stream):
                if stream is not None:
                    await stream.stop()
            run.view.set_stats(msg.error, "failed")
            self.notify(msg.error, title="solver", severity="error", timeout=8)
        elif not run.detached:
            await self._finish_cancelled(run)
        self.current = None
        self.refresh_status()

    async def _finish_cancelled(self, run: _Run) -> None:
        for stream in (run.plan_stream, run.code_stream):
            if stream is not None:
                await stream.stop()
        run.plan_stream = run.code_stream = None
        await run.view.plan.update(plan_markdown(run.thought))
        await run.view.code.update(fence(run.code) if run.code.strip() else "_(no code)_")
        if run.code.strip():
            block = CodeBlock(len(self.blocks) + 1, "python", run.code)
            self.blocks.append(block)
            run.view.set_block_number(block.number)
        run.view.set_stats("cancelled", "cancelled")
        run.detached = True
        partial = Answer(
            problem=run.problem,
            thought=run.thought.strip(),
            solution_text=run.code,
            code=run.code,
            backend=self.info.backend,
            model=self.info.model,
            bundle=self.info.bundle,
            tokens=0,
            seconds=time.monotonic() - run.started,
            tokens_per_s=0.0,
            cancelled=True,
        )
        self.answers.append(partial)
        if self.history is not None and self.conversation_id is not None:
            self.history.add_answer(self.conversation_id, partial)

    async def action_cancel(self) -> None:
        if len(self.screen_stack) > 1:
            if isinstance(self.screen, Screen) and hasattr(self.screen, "action_cancel"):
                await self.screen.action_cancel()  # type: ignore[attr-defined]
            else:
                self.pop_screen()
            return
        run = self.current
        if run is None:
            return
        run.cancel.cancel()
        await self._finish_cancelled(run)
        self.current = None
        editor = self.main.query_one(ProblemEditor)
        if not editor.text.strip():
            editor.text = run.problem  # put the prompt back, as oterm does
        self.notify("Cancelled.", timeout=2)
        self.refresh_status()

    # -- code blocks -------------------------------------------------------------------------------
    def _block(self, number: int | None) -> CodeBlock | None:
        if not self.blocks:
            self.notify("There is no code block yet.", severity="warning")
            return None
        if number is None:
            return self.blocks[-1]
        if not 1 <= number <= len(self.blocks):
            self.notify(
                f"There is no code block {number}; blocks are 1–{len(self.blocks)}.", severity="warning"
            )
            return None
        return self.blocks[number - 1]

    def action_copy_block(self, number: int | None = None) -> None:
        from .clipboard import copy_text

        focused = self.screen.focused
        if len(self.screen_stack) > 1 and number is None and focused is not None and hasattr(focused, "text"):
            return  # Ctrl+Y inside a dialog's editor is not "copy the answer"
        block = self._block(number)
        if block is None:
            return
        native = self.settings.tui.native_clipboard and not self.is_headless
        result = copy_text(block.source, self.copy_to_clipboard, native=native)
        self.last_copy = block.source
        self.notify(f"Copied code block {block.number} ({result.chars} chars, {result.method}).", timeout=3)

    def action_save_block(self, number: int | None = None) -> None:
        from .screens.dialogs import PromptDialog

        block = self._block(number)
        if block is None:
            return

        def done(path: str | None) -> None:
            if path:
                self.save_block(block, Path(path).expanduser())

        self.push_screen(PromptDialog(f"Save code block {block.number} to file", "solution.py"), done)

    def save_block(self, block: CodeBlock, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(block.source.rstrip() + "\n", encoding="utf-8")
        except OSError as exc:
            self.notify(f"Could not save to {path}: {exc.strerror}.", severity="error")
            return
        self.notify(f"Saved code block {block.number} to {path}.", timeout=4)

    # -- tests -------------------------------------------------------------------------------------
    def all_tests(self) -> list[TestCase]:
        return [*self.example_tests, *self.user_tests]

    def _show_tests(self) -> None:
        self.main.query_one(TestsPanel).show(self.all_tests(), self.last_verdicts)

    def action_add_test(self) -> None:
        from .screens.dialogs import AddTestDialog

        def done(test: TestCase | None) -> None:
            if test is not None:
                self.user_tests.append(test)
                self.last_verdicts = None
                self._show_tests()

        self.push_screen(AddTestDialog(), done)

    def action_run_tests(self, number: int | None = None) -> None:
        block = self._block(number)
        if block is None:
            return
        tests = self.all_tests()
        if not tests:
            self.notify("No tests: the problem has no examples; add one with Ctrl+N.", severity="warning")
            return
        self.notify(f"Running code block {block.number} on {len(tests)} tests…", timeout=2)
        code = block.source

        def work() -> None:
            try:
                verdicts = self.engine.run_tests(code, tests)
            except BdcError as exc:
                self.post_message(TestsDone(code, tests, None, str(exc)))
                return
            self.post_message(TestsDone(code, tests, verdicts))

        self.run_worker(work, thread=True, group="tests", exit_on_error=False)

    def on_tests_done(self, msg: TestsDone) -> None:
        if msg.error or msg.verdicts is None:
            self.notify(msg.error or "The tests did not run.", title="sandbox", severity="error")
            return
        self.last_verdicts = msg.verdicts
        self.main.query_one(TestsPanel).show(msg.tests, msg.verdicts)
        passed = sum(v.passed for v in msg.verdicts)
        if self.history is not None and self.conversation_id is not None:
            self.history.add_test_run(self.conversation_id, msg.code, msg.tests, msg.verdicts)
        sev = "information" if passed == len(msg.verdicts) else "warning"
        self.notify(f"{passed}/{len(msg.verdicts)} tests passed.", severity=sev, timeout=4)

    # -- slash commands ----------------------------------------------------------------------------
    def slash(self, line: str) -> None:
        """``/copy N``, ``/save N PATH``, ``/test [N]``, ``/deep``, ``/history``, ``/new``, ``/retrain``."""
        self.main.query_one(ProblemEditor).clear()
        parts = line[1:].split()
        cmd, args = (parts[0].lower(), parts[1:]) if parts else ("", [])
        num = int(args[0]) if args and args[0].isdigit() else None
        if cmd == "copy":
            self.action_copy_block(num)
        elif cmd == "save" and len(args) >= 2 and num is not None:
            block = self._block(num)
            if block:
                self.save_block(block, Path(args[1]).expanduser())
        elif cmd == "save":
            self.action_save_block(num)
        elif cmd in ("test", "tests", "run"):
            self.action_run_tests(num)
        elif cmd in ("deep", "history", "retrain", "settings", "keys"):
            getattr(self, f"action_{cmd}")()
        elif cmd == "new":
            self.call_later(self.action_new_conversation)
        else:
            self.notify(
                f"Unknown command '/{cmd}'; try /copy N, /save N PATH, /test N, /deep, /history, /new.",
                severity="warning",
            )

    # -- conversations -----------------------------------------------------------------------------
    async def action_new_conversation(self) -> None:
        if self.current is not None:
            await self.action_cancel()
        transcript = self.main.query_one("#transcript", VerticalScroll)
        await transcript.remove_children()
        await transcript.mount(welcome())
        self.conversation_id = None
        self.problem = ""
        self.blocks, self.answers, self.user_tests, self.example_tests = [], [], [], []
        self.last_verdicts = None
        self._show_tests()
        self.main.query_one(MixturePanel).show(None, "-")

    async def reopen(self, conversation_id: int) -> None:
        """Load a stored conversation back into the transcript (answers, code blocks, mixture)."""
        if self.history is None:
            return
        conv = self.history.load(conversation_id)
        await self.action_new_conversation()
        self.conversation_id = conv.id
        transcript = self.main.query_one("#transcript", VerticalScroll)
        for welcome in transcript.query("#welcome"):
            await welcome.remove()
        problem = ""
        for m in conv.messages:
            if m.role == "user":
                problem = m.content
            elif m.role == "assistant":
                view = AnswerView(problem, len(self.answers) + 1)
                await transcript.mount(view)
                await view.plan.update(plan_markdown(m.thought))
                await view.code.update(fence(m.code) if m.code.strip() else "_(no code)_")
                if m.code.strip():
                    self.blocks.append(CodeBlock(len(self.blocks) + 1, "python", m.code))
                    view.set_block_number(len(self.blocks))
                view.set_stats(
                    f"{m.tokens} tokens · {m.tokens_per_s or 0:.1f} tok/s · {m.model}"
                    + (" · cancelled" if m.cancelled else ""),
                    "cancelled" if m.cancelled else "",
                )
                view.gates, view.bundle = m.gates, m.bundle
                self.main.query_one(MixturePanel).show(m.gates, m.bundle)
                self.answers.append(_answer_from(problem, m))
        self.problem = problem
        self.notify(f"Reopened “{conv.title}”.", timeout=3)

    # -- other screens -----------------------------------------------------------------------------
    def action_deep(self) -> None:
        from .screens.deep import DeepScreen

        if any(isinstance(s, DeepScreen) for s in self.screen_stack):
            return
        self.push_screen(DeepScreen())

    def action_history(self) -> None:
        from .screens.history import HistoryScreen

        self.push_screen(HistoryScreen())

    def action_retrain(self) -> None:
        from .screens.retrain import RetrainScreen

        self.push_screen(RetrainScreen())

    def action_settings(self) -> None:
        from .screens.settings import SettingsScreen

        self.push_screen(SettingsScreen())

    def action_keys(self) -> None:
        from .screens.dialogs import KeysScreen

        self.push_screen(KeysScreen())

    def action_toggle_theme(self) -> None:
        self.theme = "textual-light" if self.theme == "textual-dark" else "textual-dark"

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand(
            "Copy last code block", "Copy the newest code block (Ctrl+Y)", self.action_copy_block
        )
        for block in self.blocks:
            yield SystemCommand(
                f"Copy code block {block.number}",
                "Copy this block's raw source",
                lambda n=block.number: self.action_copy_block(n),
            )
            yield SystemCommand(
                f"Run tests on code block {block.number}",
                "Run examples + your tests in the sandbox",
                lambda n=block.number: self.action_run_tests(n),
            )
        yield SystemCommand(
            "Save code block", "Save the newest code block to a file (Ctrl+S)", self.action_save_block
        )
        yield SystemCommand(
            "Run tests", "Run the newest code block on the tests (Ctrl+T)", self.action_run_tests
        )
        yield SystemCommand("Add test", "Add your own input / expected output (Ctrl+N)", self.action_add_test)
        yield SystemCommand("Cancel", "Stop the answer being generated (Esc)", self.action_cancel)
        yield SystemCommand(
            "Deep mode", "Search with several LLMs (opt-in, budgeted) (Ctrl+D)", self.action_deep
        )
        yield SystemCommand(
            "History", "Search, reopen and export past conversations (Ctrl+R)", self.action_history
        )
        yield SystemCommand("New conversation", "Start over (Ctrl+L)", self.action_new_conversation)
        yield SystemCommand("Retrain", "Train new experts from stored trajectories (F4)", self.action_retrain)
        yield SystemCommand(
            "Settings", "Backend, model paths, bundle, threads, theme (Ctrl+O)", self.action_settings
        )
        yield SystemCommand(
            "Toggle dark / light theme", "Switch between the two themes", self.action_toggle_theme
        )
        yield SystemCommand("Key help", "Every key binding (F1)", self.action_keys)

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: Any = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """Notifications carry user text and error messages (paths, brackets): never parse them as markup."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=False)

    def on_unmount(self) -> None:
        if self.current is not None:
            self.current.cancel.cancel()


def _answer_from(problem: str, m: Any) -> Answer:
    return Answer(
        problem=problem,
        thought=m.thought,
        solution_text=m.content,
        code=m.code,
        backend=m.backend or "",
        model=m.model or "",
        bundle=m.bundle,
        tokens=m.tokens or 0,
        seconds=m.seconds or 0.0,
        tokens_per_s=m.tokens_per_s or 0.0,
        cancelled=m.cancelled,
        gates=m.gates,
    )


def plan_markdown(thought: str) -> str:
    """The plan as shown: empty numbered steps ("7.") that small base models emit are dropped."""
    lines = [ln for ln in thought.strip().splitlines() if not re.fullmatch(r"\s*\d+[.)]\s*", ln)]
    return "\n".join(lines).strip() or "_(no plan)_"


def merge_tokens(events: list[SolverEvent]) -> list[SolverEvent]:
    """Merge runs of same-kind tokens into one event. The worker queues every token and wakes the UI at
    most once per batch, so the UI handles as many updates as it can draw, however fast the backend
    streams (one message per token cost ~2 ms of UI time each and slowed llama.cpp on 2 cores)."""
    out: list[SolverEvent] = []
    for ev in events:
        prev = out[-1] if out else None
        if isinstance(ev, ThoughtToken | CodeToken) and prev is not None and type(prev) is type(ev):
            out[-1] = type(ev)(prev.text + ev.text)  # type: ignore[union-attr]
        else:
            out.append(ev)
    return out


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}
