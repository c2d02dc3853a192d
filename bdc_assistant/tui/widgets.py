"""Widgets of the main screen: the problem editor, the transcript, one answer, the mixture panel, the status
bar (the tests panel is :mod:`.tests_panel`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.widget import AwaitMount
from textual.widgets import Static, TextArea

from ..types import Gates
from . import mixture

if TYPE_CHECKING:
    from .chat import ChatState


class ProblemEditor(TextArea):
    """Multi-line problem input. Enter sends and Ctrl+J inserts a newline (terminals rarely send
    Shift+Enter); with ``enter_sends = false`` in ``[tui]`` the two keys swap roles."""

    @dataclass
    class Submitted(Message):
        text: str

    def __init__(self, *, enter_sends: bool = True, **kwargs: object) -> None:
        super().__init__(soft_wrap=True, show_line_numbers=False, tab_behavior="focus", **kwargs)  # type: ignore[arg-type]
        self.set_enter_sends(enter_sends)

    def set_enter_sends(self, value: bool) -> None:
        self.enter_sends = value
        self.placeholder = (
            "Type a coding problem. Enter sends · Ctrl+J new line"
            if value
            else "Type a coding problem. Ctrl+J sends · Enter new line"
        )

    async def _on_key(self, event: events.Key) -> None:
        send_key, newline_keys = (
            ("enter", ("ctrl+j", "shift+enter")) if self.enter_sends else ("ctrl+j", ("enter",))
        )
        if event.key == send_key:
            event.stop()
            event.prevent_default()
            if self.text.strip():
                self.post_message(self.Submitted(self.text))
            return
        if event.key in newline_keys:
            event.stop()
            event.prevent_default()
            self.insert("\n")
            return
        await super()._on_key(event)


class Transcript(VerticalScroll):
    """The answers of the conversation, newest last; a hint while there are none."""

    def compose(self) -> ComposeResult:
        yield welcome()

    def add(self, view: AnswerView) -> AwaitMount:
        self.query("#welcome").remove()
        mounted = self.mount(view)
        self.anchor()
        return mounted

    async def clear(self) -> None:
        await self.remove_children()
        await self.mount(welcome())


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


class AnswerView(Vertical):
    """One problem and its streamed answer: the plan, then the code (numbered), then the numbers."""

    DEFAULT_CSS = """
    AnswerView { height: auto; margin: 0 0 1 0; }
    AnswerView .problem { background: $boost; padding: 0 1; color: $text; }
    AnswerView .label { color: $text-muted; padding: 0 1; text-style: bold; }
    AnswerView .plan { margin: 0 1; color: $text-muted; }
    AnswerView .code { margin: 0 1; }
    AnswerView .stats { color: $text-muted; padding: 0 1; }
    AnswerView .stats.cancelled { color: $warning; }
    AnswerView .stats.failed { color: $error; }
    AnswerView Markdown { padding: 0; margin: 0; }
    """

    def __init__(self, problem: str, number: int) -> None:
        super().__init__()
        self.problem = problem
        self.number = number
        self.gates: Gates | None = None
        self.bundle: str | None = None
        from textual.widgets import Markdown  # markdown-it loads with the first answer, not at start-up

        self.plan = Markdown("", classes="plan")
        self.code = Markdown("", classes="code")
        self.code_label = Static("code", classes="label")
        self.stats = Static("thinking…", classes="stats")

    def compose(self) -> ComposeResult:
        yield Static(Text(self.problem.rstrip()), classes="problem")
        yield Static("plan", classes="label")
        yield self.plan
        yield self.code_label
        yield self.code
        yield self.stats

    @dataclass
    class Selected(Message):
        """The user clicked this answer: show its mixture in the side panel."""

        view: AnswerView

    def on_click(self) -> None:
        self.post_message(self.Selected(self))

    def set_block_number(self, n: int) -> None:
        self.code_label.update(f"code [{n}]  · ^y copy · ^s save · ^t test · /copy {n}")

    def set_stats(self, text: str, kind: str = "") -> None:
        self.stats.set_classes(f"stats {kind}".strip())
        self.stats.update(Text(text))


class MixturePanel(Vertical):
    """Bars of the mean gate per expert and the per-layer heat map of the last answer's gates."""

    DEFAULT_CSS = """
    MixturePanel { height: auto; padding: 0 1; }
    MixturePanel .title { text-style: bold; color: $accent; }
    MixturePanel .muted { color: $text-muted; }
    """

    def compose(self) -> ComposeResult:
        yield Static("mixture of experts", classes="title")
        yield Static("no answer yet", id="mix-summary", classes="muted")
        yield Static("", id="mix-bars")
        yield Static("", id="mix-caption", classes="muted")
        yield Static("", id="mix-heat")

    _last: tuple[Gates | None, str | None] | None = None

    def on_resize(self) -> None:
        if self._last is not None:
            self.show(*self._last)

    def show(self, gates: Gates | None, bundle: str | None = None) -> None:
        self._last = (gates, bundle)
        summary = self.query_one("#mix-summary", Static)
        bars = self.query_one("#mix-bars", Static)
        heat = self.query_one("#mix-heat", Static)
        caption = self.query_one("#mix-caption", Static)
        if gates is None:
            summary.update("plain base model (no bundle)" if bundle is None else "no gates reported")
            bars.update("")
            caption.update("")
            heat.update("")
            return
        caption.update("gates: layer ↓ · expert×rank →")
        avail = max(24, self.size.width - 2)
        pad = min(12, max((len(n) for n in mixture.expert_names(gates)), default=6))
        summary.update(Text(mixture.summary(gates)))
        bars.update(mixture.bars(gates, width=max(6, avail - pad - 9), name_width=pad))
        heat.update(mixture.heatmap(gates, max_cols=max(8, avail - 5 - gates.n_experts)))


class StatusBar(Static):
    """backend · model · bundle · tokens/s · state: what is answering, and how fast."""

    DEFAULT_CSS = """
    StatusBar { height: 1; background: $panel; color: $text; padding: 0 1; }
    """

    def show(self, chat: ChatState) -> None:
        info = chat.info
        state = "busy" if chat.current is not None else info.state
        t = Text()
        t.append("● ", style={"ready": "green", "warming": "yellow", "busy": "cyan"}.get(state, "red"))
        t.append(f"{info.label}", style="bold")
        t.append(f" · {info.model}")
        t.append(f" · bundle {info.bundle or 'none'}")
        t.append(f" · {chat.tokens_per_s:.1f} tok/s" if chat.tokens_per_s else " · – tok/s")
        t.append(f" · deep {chat.deep_state}")
        t.append(f" · {state}", style="italic")
        self.update(t)
