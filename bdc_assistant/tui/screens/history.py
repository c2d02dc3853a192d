"""History: every conversation, searchable (FTS5), reopenable, exportable to Markdown."""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static

from ...errors import BdcError

if TYPE_CHECKING:
    from ...store.history import HistoryStore


class HistoryScreen(Screen[None]):
    DEFAULT_CSS = """
    HistoryScreen Input { margin: 0 1; }
    HistoryScreen #hist-note { padding: 0 1; color: $text-muted; }
    HistoryScreen DataTable { height: 1fr; margin: 0 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Back"),
        Binding("ctrl+e", "export", "Export Markdown", priority=True),  # Input's ctrl+e (end) is Home/End too
        Binding("f8", "delete", "Delete"),
    ]

    def __init__(self, history: HistoryStore | None, reopen: Callable[[int], Awaitable[None]]) -> None:
        """``reopen`` loads a conversation back into the main screen."""
        super().__init__()
        self.history, self.reopen = history, reopen
        self.row_conversations: list[int] = []

    def compose(self) -> ComposeResult:
        yield Static(
            "history · type to search every problem, plan and code (FTS5) · Enter reopens", id="hist-note"
        )
        yield Input(placeholder="search…", id="hist-search")
        table: DataTable[str | Text] = DataTable(id="hist-table", cursor_type="row", zebra_stripes=True)
        table.add_columns("when", "conversation", "match")
        yield table
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(Input).focus()
        self.refresh_rows("")

    @on(Input.Changed, "#hist-search")
    def search_changed(self, event: Input.Changed) -> None:
        self.refresh_rows(event.value)

    @on(Input.Submitted, "#hist-search")
    async def search_submitted(self) -> None:
        if self.row_conversations:
            await self._open(self.row_conversations[0])

    def refresh_rows(self, query: str) -> None:
        store = self.history
        table = self.query_one(DataTable)
        table.clear()
        self.row_conversations = []
        if store is None:
            self.query_one("#hist-note", Static).update("History is off (no database).")
            return
        try:
            if query.strip():
                rows = [
                    (h.conversation_id, h.title, f"{h.role}: {' '.join(h.snippet.split())}")
                    for h in store.search(query)
                ]
                ages = {c.id: c.updated for c in store.list_conversations(1000)}
            else:
                convs = store.list_conversations()
                rows = [(c.id, c.title, f"{c.messages} messages") for c in convs]
                ages = {c.id: c.updated for c in convs}
        except BdcError as exc:
            self.query_one("#hist-note", Static).update(Text(str(exc)))
            return
        for cid, title, match in rows:
            self.row_conversations.append(cid)
            table.add_row(_age(ages.get(cid)), Text(title), highlight_snippet(match[:90]))

    @on(DataTable.RowSelected)
    async def row_selected(self, event: DataTable.RowSelected) -> None:
        await self._open(self.row_conversations[event.cursor_row])

    async def _open(self, cid: int) -> None:
        self.app.pop_screen()
        await self.reopen(cid)

    def _selected(self) -> int | None:
        table = self.query_one(DataTable)
        if not self.row_conversations:
            return None
        return self.row_conversations[min(table.cursor_row, len(self.row_conversations) - 1)]

    def action_export(self) -> None:
        cid = self._selected()
        store = self.history
        if cid is None or store is None:
            self.notify("Nothing to export.", severity="warning")
            return
        from ...paths import app_paths

        out_dir = app_paths().data_dir / "exports"
        out_dir.mkdir(parents=True, exist_ok=True)
        path = Path(out_dir) / f"conversation-{cid}.md"
        path.write_text(store.export_markdown(cid), encoding="utf-8")
        self.notify(f"Exported to {path}.", timeout=6)

    def action_delete(self) -> None:
        cid = self._selected()
        if cid is None or self.history is None:
            return
        self.history.delete_conversation(cid)
        self.refresh_rows(self.query_one(Input).value)

    async def action_cancel(self) -> None:
        self.app.pop_screen()


def highlight_snippet(snippet: str) -> Text:
    """FTS5 marks matches as [word]; show them bold instead (cells are Text, never markup: user text
    may contain brackets)."""
    out = Text()
    for i, part in enumerate(re.split(r"\[([^\[\]]*)\]", snippet)):
        out.append(part, style="bold reverse" if i % 2 else "")
    return out


def _age(ts: float | None) -> str:
    if ts is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))
