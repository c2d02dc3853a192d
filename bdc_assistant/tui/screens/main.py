"""The main screen: transcript on the left, mixture and tests on the right, the editor and status below.

It only lays the widgets out; the app fills them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer

from ..tests_panel import TestsPanel
from ..widgets import MixturePanel, ProblemEditor, StatusBar, Transcript

if TYPE_CHECKING:
    from ..chat import ChatState
    from ..engine import LocalEngine


class MainScreen(Screen[None]):
    DEFAULT_CSS = """
    MainScreen #body { height: 1fr; }
    MainScreen #transcript { width: 1fr; padding: 0 1; }
    MainScreen #side { width: 38%; min-width: 30; max-width: 52; border-left: vkey $primary 30%; }
    MainScreen ProblemEditor { height: 6; border: round $primary 50%; }
    MainScreen ProblemEditor:focus { border: round $accent; }
    MainScreen #welcome { color: $text-muted; padding: 1 2; }
    """

    def __init__(
        self, chat: ChatState, engine: LocalEngine, enter_sends: bool, on_ready: Callable[[], None]
    ) -> None:
        """``on_ready`` runs once the widgets exist (the app fills the status bar then)."""
        super().__init__(id="main")
        self.chat, self.engine, self.enter_sends, self.on_ready = chat, engine, enter_sends, on_ready

    def compose(self) -> ComposeResult:
        with Horizontal(id="body"):
            yield Transcript(id="transcript")
            with Vertical(id="side"):
                yield MixturePanel(id="mixture")
                yield TestsPanel(self.chat, self.engine, id="tests")
        yield ProblemEditor(id="editor", enter_sends=self.enter_sends)
        yield StatusBar(id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.on_ready()
        self.query_one(ProblemEditor).focus()
