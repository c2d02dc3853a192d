"""The Textual app: ask, watch the mixture, run the answer on tests, reopen history, go deep, retrain.

The app holds the settings, the injected engine (:mod:`.engine`), the history store and the chat state
(:mod:`.chat`), starts the workers, and hands solver events to the one reducer (:mod:`.handler`). The
engine warms up in a worker started *after* the first frame, so the window appears before torch or
llama.cpp load; a problem sent while warming waits for it. Streaming goes through ``MarkdownStream``
(which batches fragments, so no flicker) and ends with one full ``Markdown.update`` (the oterm #308
blank-message fix). Esc sets the cancel token and detaches the view at once: late tokens are dropped.
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from textual import on
from textual.app import App
from textual.binding import Binding, BindingType
from textual.css.query import NoMatches
from textual.screen import Screen

from ..types import CancelToken, Gates
from .chat import ChatState, Run
from .codeblocks import CodeBlock
from .commands import BdcCommands, slash
from .engine import Engine, EngineInfo
from .handler import EventHandler, replay
from .messages import EngineWarm, SolverEnded, SolverWake
from .screens.main import MainScreen
from .tests_panel import TestsPanel
from .widgets import AnswerView, MixturePanel, ProblemEditor, StatusBar, Transcript
from .workers import start_worker

if TYPE_CHECKING:
    from ..config import Settings
    from ..store.history import HistoryStore

log = logging.getLogger(__name__)


class BdcApp(App[None]):
    """The bdc-assistant TUI."""

    TITLE = "bdc"
    ENABLE_COMMAND_PALETTE = True
    COMMANDS = App.COMMANDS | {BdcCommands}
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
        self.chat = ChatState(history)
        self.handler = EventHandler(self.chat, self.show_gates, self.refresh_status)

    # -- start-up ----------------------------------------------------------------------------------
    def get_default_screen(self) -> Screen[Any]:
        return MainScreen(self.chat, self.engine, self.settings.tui.enter_sends, on_ready=self.refresh_status)

    def on_mount(self) -> None:
        self.call_after_refresh(self._first_frame)

    def _first_frame(self) -> None:
        if self._first_frame_file is not None:
            self._first_frame_file.write_text(f"{time.time():.6f}\n", encoding="utf-8")
        if self._exit_after_first_frame:
            self.exit()
        elif self._warm_up:
            start_worker(
                self,
                lambda: self.post_message(EngineWarm(self.engine.warm_up())),
                group="warm",
                what="Loading the local solver",
                on_error=lambda msg: self.post_message(EngineWarm(EngineInfo(state="error", detail=msg))),
            )

    def on_engine_warm(self, msg: EngineWarm) -> None:
        self.chat.info = msg.info
        if msg.info.state == "error":
            self.notify(msg.info.detail, title="engine", severity="error", timeout=10)
        self.refresh_status()

    def refresh_status(self) -> None:
        with contextlib.suppress(NoMatches):  # before the main screen is composed
            self.main.query_one(StatusBar).show(self.chat)

    @property
    def main(self) -> Screen[Any]:
        return self.screen_stack[0]

    def show_gates(self, gates: Gates | None, bundle: str | None) -> None:
        self.main.query_one(MixturePanel).show(gates, bundle)

    # -- asking ------------------------------------------------------------------------------------
    @on(AnswerView.Selected)
    def on_answer_selected(self, msg: AnswerView.Selected) -> None:
        self.show_gates(msg.view.gates, msg.view.bundle)

    @on(ProblemEditor.Submitted)
    def on_submit(self, msg: ProblemEditor.Submitted) -> None:
        self.ask(msg.text)

    def ask(self, text: str) -> None:
        if self.chat.current is not None:
            self.notify("An answer is still streaming; press Esc to cancel it first.", severity="warning")
            return
        text = text.strip("\n")
        self.main.query_one(ProblemEditor).clear()
        if text.strip().startswith("/"):
            slash(self, text.strip())
            return
        self.chat.remember_user(text)
        if text != self.chat.problem:
            self.chat.new_problem(text)
            self.main.query_one(TestsPanel).load_examples(text)
        self.chat.run_ids += 1
        log.info("answer %d: %d characters asked", self.chat.run_ids, len(text))
        log.debug("answer %d: problem %r", self.chat.run_ids, text)  # problem texts only at DEBUG
        view = AnswerView(text, len(self.chat.answers) + 1)
        self.main.query_one(Transcript).add(view)
        run = self.chat.current = Run(self.chat.run_ids, text, CancelToken(), view)
        self.refresh_status()
        start_worker(
            self,
            lambda: self._solve(run),
            group="solve",
            what="The solver",
            on_error=lambda msg: self.post_message(SolverEnded(run.id, msg)),
        )

    def _solve(self, run: Run) -> None:
        for event in self.engine.solve(run.problem, run.cancel):
            if run.put(event):
                self.post_message(SolverWake(run.id))
            if run.cancel.cancelled:
                break
        self.post_message(SolverEnded(run.id))

    async def on_solver_wake(self, msg: SolverWake) -> None:
        run = self.chat.current
        if run is None or run.id != msg.run_id:
            return
        for event in run.take():
            if run.detached or self.chat.current is not run:
                return
            await self.handler.handle(run, event)

    async def on_solver_ended(self, msg: SolverEnded) -> None:
        run = self.chat.current
        if run is None or run.id != msg.run_id:
            return
        if msg.error:
            await self.handler.fail(run, msg.error)
            self.notify(msg.error, title="solver", severity="error", timeout=8)
        elif not run.detached:
            await self.handler.cancel(run)
        self.chat.current = None
        self.refresh_status()

    async def action_cancel(self) -> None:
        if len(self.screen_stack) > 1:
            if not await self.run_action("cancel", self.screen):
                self.pop_screen()
            return
        run = self.chat.current
        if run is None:
            return
        run.cancel.cancel()
        await self.handler.cancel(run)
        self.chat.current = None
        editor = self.main.query_one(ProblemEditor)
        if not editor.text.strip():
            editor.text = run.problem  # put the prompt back, as oterm does
        self.notify("Cancelled.", timeout=2)
        self.refresh_status()

    # -- code blocks -------------------------------------------------------------------------------
    def block(self, number: int | None) -> CodeBlock | None:
        found = self.chat.block(number)
        if isinstance(found, str):
            self.notify(found, severity="warning")
            return None
        return found

    def action_copy_block(self, number: int | None = None) -> None:
        from .clipboard import copy_text

        focused = self.screen.focused
        if len(self.screen_stack) > 1 and number is None and focused is not None and hasattr(focused, "text"):
            return  # Ctrl+Y inside a dialog's editor is not "copy the answer"
        block = self.block(number)
        if block is None:
            return
        native = self.settings.tui.native_clipboard and not self.is_headless
        result = copy_text(block.source, self.copy_to_clipboard, native=native)
        self.chat.last_copy = block.source
        self.notify(f"Copied code block {block.number} ({result.chars} chars, {result.method}).", timeout=3)

    def action_save_block(self, number: int | None = None) -> None:
        from .screens.dialogs import PromptDialog

        block = self.block(number)
        if block is not None:
            dialog = PromptDialog(f"Save code block {block.number} to file", "solution.py")
            self.push_screen(
                dialog, lambda path: self.save_block(block, Path(path).expanduser()) if path else None
            )

    def save_block(self, block: CodeBlock, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(block.source.rstrip() + "\n", encoding="utf-8")
        except OSError as exc:
            self.notify(f"Could not save to {path}: {exc.strerror}.", severity="error")
            return
        self.notify(f"Saved code block {block.number} to {path}.", timeout=4)

    # -- tests -------------------------------------------------------------------------------------
    def action_add_test(self) -> None:
        self.main.query_one(TestsPanel).add_test()

    def action_run_tests(self, number: int | None = None) -> None:
        block = self.block(number)
        if block is not None:
            self.main.query_one(TestsPanel).run(block)

    # -- conversations -----------------------------------------------------------------------------
    async def action_new_conversation(self) -> None:
        if self.chat.current is not None:
            await self.action_cancel()
        await self.main.query_one(Transcript).clear()
        self.chat.reset()
        self.main.query_one(TestsPanel).show_chat()
        self.show_gates(None, "-")

    async def reopen(self, conversation_id: int) -> None:
        """Load a stored conversation back into the transcript (answers, code blocks, mixture)."""
        if self.history is None:
            return
        conv = self.history.load(conversation_id)
        await self.action_new_conversation()
        await replay(conv, self.main.query_one(Transcript), self.chat)
        if self.chat.answers:
            self.show_gates(self.chat.answers[-1].gates, self.chat.answers[-1].bundle)
        self.notify(f"Reopened “{conv.title}”.", timeout=3)

    def set_deep_state(self, state: str) -> None:
        self.chat.deep_state = state
        self.refresh_status()

    # -- other screens -----------------------------------------------------------------------------
    def action_deep(self) -> None:
        from .screens.deep import DeepScreen

        if not any(isinstance(s, DeepScreen) for s in self.screen_stack):
            self.push_screen(DeepScreen(self.engine, self.settings.deep, self.chat, self.set_deep_state))

    def action_history(self) -> None:
        from .screens.history import HistoryScreen

        self.push_screen(HistoryScreen(self.history, self.reopen))

    def action_retrain(self) -> None:
        from .screens.retrain import RetrainScreen

        self.push_screen(RetrainScreen(self.engine, self.settings.retrain.min_new))

    def action_settings(self) -> None:
        from ..paths import app_paths
        from .screens.settings import SettingsScreen

        path = self.config_file or app_paths().config_file
        self.push_screen(SettingsScreen(self.settings, path, self.apply_settings))

    def apply_settings(self) -> None:
        """The settings screen saved: apply what takes effect at once."""
        self.theme = "textual-light" if self.settings.tui.theme == "light" else "textual-dark"
        self.main.query_one(ProblemEditor).set_enter_sends(self.settings.tui.enter_sends)

    def action_keys(self) -> None:
        from .screens.dialogs import KeysScreen

        self.push_screen(KeysScreen())

    def action_toggle_theme(self) -> None:
        self.theme = "textual-light" if self.theme == "textual-dark" else "textual-dark"

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
        if self.chat.current is not None:
            self.chat.current.cancel.cancel()
