"""Small modal dialogs: a one-line prompt, add-a-test, the deep-mode consent, and key help."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Markdown, Select, Static, TextArea

from ...types import TestCase

DIALOG_CSS = """
{name} {{ align: center middle; }}
{name} > Vertical {{ width: 76; max-width: 95%; height: auto; max-height: 90%; border: thick $primary;
    background: $surface; padding: 1 2; }}
{name} .title {{ text-style: bold; color: $accent; margin-bottom: 1; }}
{name} .buttons {{ height: auto; align-horizontal: right; margin-top: 1; }}
{name} .buttons Button {{ margin-left: 2; }}
{name} TextArea {{ height: 5; }}
"""


class PromptDialog(ModalScreen[str | None]):
    """Ask for one line of text (a file path). Enter accepts, Esc dismisses with None."""

    DEFAULT_CSS = DIALOG_CSS.format(name="PromptDialog")
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, value: str = "") -> None:
        super().__init__()
        self._title, self._value = title, value

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self._title, classes="title")
            yield Input(self._value, id="prompt-input")
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("OK", id="ok", variant="primary")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    @on(Input.Submitted)
    @on(Button.Pressed, "#ok")
    def accept(self) -> None:
        self.dismiss(self.query_one(Input).value.strip() or None)

    @on(Button.Pressed, "#cancel")
    async def action_cancel(self) -> None:
        self.dismiss(None)


class AddTestDialog(ModalScreen[TestCase | None]):
    """A user test: stdin + expected stdout, or Python assert lines run after the code."""

    DEFAULT_CSS = DIALOG_CSS.format(name="AddTestDialog")
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Add a test", classes="title")
            yield Select(
                [("stdin → stdout", "stdio"), ("Python asserts", "call")],
                value="stdio",
                allow_blank=False,
                id="kind",
            )
            yield Label("input (stdin, or assert lines)")
            yield TextArea(id="test-input")
            yield Label("expected output (stdin tests)")
            yield TextArea(id="test-output")
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Add", id="ok", variant="primary")

    @on(Button.Pressed, "#ok")
    def accept(self) -> None:
        kind = str(self.query_one("#kind", Select).value)
        given = self.query_one("#test-input", TextArea).text
        expected = self.query_one("#test-output", TextArea).text
        if not given.strip() and not expected.strip():
            self.notify("A test needs an input or an expected output.", severity="warning")
            return
        self.dismiss(TestCase(input=given, output=expected, kind=kind, origin="user"))  # type: ignore[arg-type]

    @on(Button.Pressed, "#cancel")
    async def action_cancel(self) -> None:
        self.dismiss(None)


CONSENT_HEADER = """\
## Deep mode sends data off this machine

Nothing has been sent. **Allow** records your consent for these recipients (asked again for a new host);
**Refuse** keeps deep mode off. Spending stops at the call and dollar budget you set; Esc cancels a run.
"""


class ConsentDialog(ModalScreen[bool]):
    """First use of deep mode: say exactly what leaves the machine and to whom; refusing keeps it off."""

    DEFAULT_CSS = DIALOG_CSS.format(name="ConsentDialog") + (
        "ConsentDialog Markdown { height: auto; } ConsentDialog #consent-body { height: auto; padding: 0 1; }"
    )
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Refuse")]

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def compose(self) -> ComposeResult:
        with Vertical():
            with VerticalScroll():
                yield Markdown(CONSENT_HEADER)
                yield Static(Text(self.text), id="consent-body")
            with Horizontal(classes="buttons"):
                yield Button("Refuse", id="refuse", variant="error")
                yield Button("Allow", id="allow", variant="success")

    def on_mount(self) -> None:
        self.query_one("#refuse", Button).focus()

    @on(Button.Pressed, "#allow")
    def allow(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#refuse")
    async def action_cancel(self) -> None:
        self.dismiss(False)


KEYS_TEXT = """\
## Keys

| key | action |
|---|---|
| **Enter** | send the problem (`[tui] enter_sends = false` makes Enter a newline and Ctrl+J send) |
| **Ctrl+J** | new line in the problem (Shift+Enter too, where the terminal sends it) |
| **Esc** | cancel the answer at once (the problem goes back into the editor); close a screen |
| **Ctrl+Y** | copy the newest code block (native clipboard, then OSC 52) |
| **Ctrl+S** | save the newest code block to a file |
| **Ctrl+T** | run the newest code block on the tests in the sandbox |
| **Ctrl+N** | add a test of your own |
| **Ctrl+D** | deep mode |
| **Ctrl+R** | history: search, reopen, export (Ctrl+E exports Markdown, F8 deletes) |
| **F4** | retrain from stored trajectories |
| **Ctrl+O** | settings (backend, model paths, bundle, threads, theme) |
| **Ctrl+L** | new conversation |
| **Ctrl+P** | command palette: every action, incl. *Copy code block N* |
| **F1** | this help |
| **Ctrl+Q** | quit |

Slash commands in the editor: `/copy N`, `/save N PATH`, `/test N`, `/deep`, `/history`, `/retrain`,
`/settings`, `/new`.
"""


class KeysScreen(ModalScreen[None]):
    DEFAULT_CSS = DIALOG_CSS.format(name="KeysScreen") + "KeysScreen Markdown { height: auto; }"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Close"),
        Binding("f1", "cancel", "Close"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(), VerticalScroll():
            yield Markdown(KEYS_TEXT)

    async def action_cancel(self) -> None:
        self.dismiss(None)
