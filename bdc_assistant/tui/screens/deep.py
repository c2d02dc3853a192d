"""Deep mode: consent on first use, provider / model / key, budgets, a live search tree, cancel, and the
best solution shown beside the local answer.

Nothing touches the network before the user has consented *and* pressed Start: the consent dialog is
pushed on mount, and a refusal leaves the screen inert (a test guards this with a socket that fails on
connect).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Label, Markdown, Select, Static, Tree

from ...errors import BdcError
from ...types import CancelToken
from ..codeblocks import fence
from ..engine import DeepEngine, DeepNode, DeepProgress, DeepRequest, Provider
from ..workers import start_worker
from .dialogs import ConsentDialog

if TYPE_CHECKING:
    from ...config import DeepSettings
    from ..chat import ChatState


# What the method selector offers: MC-ToA (all agents) and the paper's Table-1 baselines (single agent).
METHODS: tuple[tuple[str, str], ...] = (
    ("MC-Tree-of-Agents", "mc-toa"),
    ("Reflexion", "reflexion"),
    ("ToT (BFS)", "tot"),
    ("RAP", "rap"),
    ("LATS", "lats"),
    ("LDB", "ldb"),
    ("RethinkMCTS", "rethinkmcts"),
)


def progress_line(p: DeepProgress) -> str:
    """Spent / budget for calls, tokens and dollars, live, plus the best public pass rate so far."""
    best = "–" if p.best_pr is None else f"{p.best_pr:.0%}"
    return (
        f"{p.method} · nodes {len(p.nodes)} · calls {p.calls}/{p.max_calls or '∞'} · "
        f"tokens {p.tokens:,}/{f'{p.max_tokens:,}' if p.max_tokens else '∞'} · "
        f"spend ${p.spend_usd:.4f}/${p.budget_usd:.2f} · {p.elapsed_s:.1f}s · best public PR {best}"
    )


class DeepProgressMsg(Message):
    def __init__(self, progress: DeepProgress, error: str | None = None, final: bool = False) -> None:
        super().__init__()
        self.progress, self.error, self.final = progress, error, final


class DeepScreen(Screen[None]):
    DEFAULT_CSS = """
    DeepScreen #controls { height: auto; padding: 0 1; }
    DeepScreen #controls > Horizontal { height: auto; }
    DeepScreen #controls Select { width: 26; }
    DeepScreen #controls Input { width: 20; }
    DeepScreen #controls #max-calls, DeepScreen #controls #budget { width: 12; }
    DeepScreen #controls Label { padding: 1 1 0 1; }
    DeepScreen #deep-state { padding: 0 1; color: $text-muted; height: auto; }
    DeepScreen #deep-body { height: 1fr; }
    DeepScreen Tree { width: 1fr; border: round $primary 40%; }
    DeepScreen #compare { width: 1fr; }
    DeepScreen #compare VerticalScroll { height: 1fr; border: round $primary 40%; }
    DeepScreen .pane-title { text-style: bold; color: $accent; padding: 0 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel / back"),
        Binding("ctrl+g", "start", "Start"),
    ]

    def __init__(
        self,
        engine: DeepEngine,
        settings: DeepSettings,
        chat: ChatState,
        set_state: Callable[[str], None],
    ) -> None:
        """``chat``: the problem searched on, its tests, the local answer, where a finished run is kept;
        ``set_state`` shows deep mode's state in the status bar."""
        super().__init__()
        self.engine, self.settings, self.chat, self.set_state = engine, settings, chat, set_state
        self.cancel_token: CancelToken | None = None
        self.running = False
        self.allowed = False
        self.last: DeepProgress | None = None
        self.unavailable: str | None = None
        try:
            self.providers: list[Provider] = engine.deep_providers()
        except BdcError as exc:  # the presets are unreadable: say why, stay inert
            self.providers, self.unavailable = [Provider("none", "", ("none",))], str(exc)
        self.run_started: float | None = None
        self._drawn_nodes: tuple[DeepNode, ...] | None = None
        self.consented: set[tuple[str, ...]] = set()

    def compose(self) -> ComposeResult:
        deep = self.settings
        first = self.providers[0]
        with Vertical(id="controls"):
            configured = ", ".join(deep.agents)
            yield Static(
                "deep mode" + (f" · agents from config: {configured}" if configured else ""),
                classes="pane-title",
            )
            with Horizontal():
                yield Select(
                    [(p.name, p.name) for p in self.providers],
                    value=first.name,
                    allow_blank=False,
                    id="provider",
                )
                yield Select(
                    [(m, m) for m in first.models], value=first.models[0], allow_blank=False, id="model"
                )
                yield Input(placeholder="API key (stored in keyring)", password=True, id="key")
                yield Button("Save key", id="save-key")
            with Horizontal():
                yield Select(list(METHODS), value=deep.method, allow_blank=False, id="method")
                yield Label("max calls")
                yield Input(str(deep.max_calls), id="max-calls", type="integer")
                yield Label("budget $")
                yield Input(f"{deep.budget_usd:g}", id="budget", type="number")
                yield Button("Start", id="start", variant="success", disabled=True)
                yield Button("Cancel", id="stop", variant="error", disabled=True)
        yield Static("", id="deep-state")
        with Horizontal(id="deep-body"):
            tree: Tree[str] = Tree("search tree", id="tree")
            tree.show_root = True
            yield tree
            with Vertical(id="compare"):
                yield Static("best deep solution", classes="pane-title")
                with VerticalScroll():
                    yield Markdown("_no run yet_", id="deep-best")
                yield Static("local answer", classes="pane-title")
                with VerticalScroll():
                    yield Markdown(self._local_answer(), id="deep-local")
        yield Footer()

    def _local_answer(self) -> str:
        answers = self.chat.answers
        if not answers or not answers[-1].code.strip():
            return "_ask the local solver first_"
        return fence(answers[-1].code)

    def on_mount(self) -> None:
        self.set_interval(1.0, self._tick, name="deep-elapsed")
        if self.unavailable:
            self._state(self.unavailable)
            return
        self._show_key_source()
        self._ask_consent(then_start=False)

    def agents(self) -> tuple[str, ...]:
        configured = tuple(self.settings.agents)
        if configured:
            return configured
        return (self._provider().agent(str(self.query_one("#model", Select).value)),)

    def _ask_consent(self, then_start: bool) -> bool:
        """True when the current agents' hosts already have consent; otherwise ask (first use)."""
        agents = self.agents()
        try:
            ok = agents in self.consented or self.engine.has_consent(agents)
            text = "" if ok else self.engine.consent_text(agents)
        except BdcError as exc:
            self._state(str(exc))
            return False
        if ok:
            self.consented.add(agents)
            self._allow()
            return True
        self.app.push_screen(
            ConsentDialog(text), lambda allowed: self._consent_done(agents, allowed, then_start)
        )
        return False

    def _consent_done(self, agents: tuple[str, ...], allowed: bool | None, then_start: bool) -> None:
        if not allowed:
            self.allowed = False
            self.query_one("#start", Button).disabled = True
            self.set_state("refused")
            self._state("Deep mode stays off: consent refused. Nothing was sent.")
            return
        try:
            self.engine.record_consent(agents)
        except BdcError as exc:
            self._state(str(exc))
            return
        self.consented.add(agents)
        self._allow()
        if then_start:
            self.action_start()

    def _allow(self) -> None:
        self.allowed = True
        self.query_one("#start", Button).disabled = False
        problem = self.chat.problem.strip()
        self._state(
            "Ready: Start (Ctrl+G) searches on the current problem."
            if problem
            else "Ask a problem on the main screen first; deep mode searches on it."
        )

    def _state(self, text: str) -> None:
        self.query_one("#deep-state", Static).update(Text(text))

    def _provider(self) -> Provider:
        name = self.query_one("#provider", Select).value
        return next(p for p in self.providers if p.name == name)

    @on(Select.Changed, "#provider")
    def provider_changed(self) -> None:
        p = self._provider()
        model = self.query_one("#model", Select)
        model.set_options([(m, m) for m in p.models])
        model.value = p.models[0]
        self._show_key_source()

    def _show_key_source(self) -> None:
        p = self._provider()
        try:
            source = self.engine.key_source(p.name)
        except BdcError:
            source = None
        self.query_one("#key", Input).placeholder = (
            f"key: from {source}" if source else f"no {p.name} key: paste it (saved to the OS keyring)"
        )

    @on(Button.Pressed, "#save-key")
    def save_key(self) -> None:
        field = self.query_one("#key", Input)
        value = field.value.strip()
        if not value:
            self.notify("Paste a key first.", severity="warning")
            return
        try:
            self.engine.store_key(self._provider().name, value)
        except BdcError as exc:
            self.notify(str(exc), severity="error")
            return
        field.value = ""
        self._show_key_source()
        self.notify("Key stored in the OS keyring.", timeout=3)

    def _request(self) -> DeepRequest | None:
        try:
            max_calls = int(self.query_one("#max-calls", Input).value)
            budget = float(self.query_one("#budget", Input).value)
        except ValueError:
            self.notify("Max calls must be a whole number and the budget a dollar amount.", severity="error")
            return None
        if max_calls < 1 or budget < 0:
            self.notify("Max calls must be at least 1 and the budget not negative.", severity="error")
            return None
        problem = self.chat.problem.strip()
        if not problem:
            self.notify("Ask a problem on the main screen first.", severity="warning")
            return None
        method = str(self.query_one("#method", Select).value)
        agents = self.agents()
        if method != "mc-toa" and len(agents) > 1:
            self.notify(
                f"{method} is a single-agent search: configure one agent, or choose MC-Tree-of-Agents.",
                severity="error",
            )
            return None
        return DeepRequest(problem, tuple(self.chat.tests()), agents, max_calls, budget, method)

    @on(Button.Pressed, "#start")
    def action_start(self) -> None:
        if not self.allowed or self.running:
            return
        if self.agents() not in self.consented and not self._ask_consent(then_start=True):
            return  # the dialog is up; Allow starts the run
        request = self._request()
        if request is None:
            return
        self.cancel_token = token = CancelToken()
        self.running = True
        self.run_started = time.monotonic()
        self.query_one("#start", Button).disabled = True
        self.query_one("#stop", Button).disabled = False
        self.set_state("running")
        self._state("Searching…")

        def progress(p: DeepProgress) -> None:
            self.post_message(DeepProgressMsg(p))

        start_worker(
            self,
            lambda: self.post_message(
                DeepProgressMsg(self.engine.deep_run(request, progress, token), final=True)
            ),
            group="deep",
            what="Deep mode",
            on_error=lambda msg: self.post_message(DeepProgressMsg(self.last or DeepProgress(), msg, True)),
        )

    @on(Button.Pressed, "#stop")
    def stop(self) -> None:
        if self.cancel_token is not None:
            self.cancel_token.cancel()
            self._state("Cancelling… (the calls in flight finish, nothing new starts)")

    async def action_cancel(self) -> None:
        if self.running:
            self.stop()
            return
        self.app.pop_screen()

    async def on_deep_progress_msg(self, msg: DeepProgressMsg) -> None:
        p = msg.progress
        self.last = p
        if p.nodes != self._drawn_nodes:  # Spend events change no node: skip the redraw
            self._draw_tree(p)
        line = progress_line(p)
        if msg.final:
            self.running = False
            self.query_one("#start", Button).disabled = not self.allowed
            self.query_one("#stop", Button).disabled = True
            self.set_state("on" if self.allowed else "off")
            if msg.error:
                line = f"{msg.error}  ({line})"
            else:
                line += f" · stopped by {p.stop_reason or 'done'}"
                if p.best_code.strip():
                    await self.query_one("#deep-best", Markdown).update(fence(p.best_code))
                self.chat.keep_deep(p)
        self._state(line)

    def _tick(self) -> None:
        """Elapsed time moves even while a slow LLM call is in flight (events only come between calls)."""
        if self.running and self.last is not None and self.run_started is not None:
            live = replace(self.last, elapsed_s=time.monotonic() - self.run_started)
            self._state(progress_line(live))

    def _draw_tree(self, p: DeepProgress) -> None:
        self._drawn_nodes = p.nodes
        tree = self.query_one("#tree", Tree)
        tree.clear()
        children: dict[str | None, list[Any]] = {}
        for node in p.nodes:
            children.setdefault(node.parent, []).append(node)
        known = {n.id for n in p.nodes}

        def label(n: Any) -> Text:
            marks = (" ✂pruned" if n.pruned else "") + (" ↻refined" if n.refined else "")
            pr = "  ?" if n.pr is None else f"{n.pr:>4.0%}"
            return Text(f"[{pr}] {n.label}{marks}")

        def add(parent_node: Any, key: str | None) -> None:
            for n in children.get(key, []):
                child = parent_node.add(label(n), expand=True)
                add(child, n.id)

        add(tree.root, None)
        for key, kids in children.items():  # orphans (parent not reported): hang them off the root
            if key is not None and key not in known:
                for n in kids:
                    child = tree.root.add(label(n), expand=True)
                    add(child, n.id)
        tree.root.expand()
