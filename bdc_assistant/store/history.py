"""Chat history: every conversation, answer (with its mixture of experts), test run and deep run.

Lives in the app's one SQLite file (``store.db``), under the ``history`` migration component. Messages are
indexed by an FTS5 external-content table kept in sync by triggers, so search needs no second copy of
the text and cannot drift. User queries are quoted term by term before they reach FTS5: typing
``foo-bar "`` searches for those words instead of raising a syntax error.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import StoreError
from ..types import Answer, Gates, TestCase, Verdict
from .db import connect, register_migrations

_V1 = """
CREATE TABLE IF NOT EXISTS conversations (
    id INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('user', 'assistant', 'tests', 'deep')),
    content TEXT NOT NULL DEFAULT '',
    thought TEXT NOT NULL DEFAULT '',
    code TEXT NOT NULL DEFAULT '',
    backend TEXT, model TEXT, bundle TEXT,
    tokens INTEGER, seconds REAL, tokens_per_s REAL,
    cancelled INTEGER NOT NULL DEFAULT 0,
    gates_json TEXT,
    verdicts_json TEXT,
    deep_run_id TEXT,
    spend_usd REAL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_conversation ON messages(conversation_id, id);
CREATE VIRTUAL TABLE IF NOT EXISTS messages_fts USING fts5(
    content, thought, code, content='messages', content_rowid='id'
);
CREATE TRIGGER IF NOT EXISTS messages_ai AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts(rowid, content, thought, code) VALUES (new.id, new.content, new.thought, new.code);
END;
CREATE TRIGGER IF NOT EXISTS messages_ad AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, content, thought, code)
    VALUES ('delete', old.id, old.content, old.thought, old.code);
END;
CREATE TRIGGER IF NOT EXISTS messages_au AFTER UPDATE ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, content, thought, code)
    VALUES ('delete', old.id, old.content, old.thought, old.code);
    INSERT INTO messages_fts(rowid, content, thought, code) VALUES (new.id, new.content, new.thought, new.code);
END;
"""

register_migrations("history", [_V1])


@dataclass(frozen=True)
class ConversationSummary:
    id: int
    title: str
    created: float
    updated: float
    messages: int


@dataclass(frozen=True)
class Message:
    id: int
    conversation_id: int
    role: str
    content: str
    thought: str = ""
    code: str = ""
    backend: str | None = None
    model: str | None = None
    bundle: str | None = None
    tokens: int | None = None
    seconds: float | None = None
    tokens_per_s: float | None = None
    cancelled: bool = False
    gates: Gates | None = None
    verdicts: tuple[dict[str, Any], ...] = ()
    deep_run_id: str | None = None
    spend_usd: float | None = None
    created: float = 0.0


@dataclass(frozen=True)
class Conversation:
    id: int
    title: str
    created: float
    messages: tuple[Message, ...]


@dataclass(frozen=True)
class SearchHit:
    conversation_id: int
    message_id: int
    title: str
    role: str
    snippet: str


def gates_to_json(gates: Gates | None) -> str | None:
    if gates is None:
        return None
    return json.dumps(
        {
            "values": [list(row) for row in gates.values],
            "n_experts": gates.n_experts,
            "rank": gates.rank,
            "cluster_similarity": list(gates.cluster_similarity),
            "cluster_names": list(gates.cluster_names),
        }
    )


def gates_from_json(text: str | None) -> Gates | None:
    if not text:
        return None
    data = json.loads(text)
    return Gates(
        values=tuple(tuple(float(v) for v in row) for row in data["values"]),
        n_experts=int(data["n_experts"]),
        rank=int(data["rank"]),
        cluster_similarity=tuple(float(v) for v in data.get("cluster_similarity", ())),
        cluster_names=tuple(str(v) for v in data.get("cluster_names", ())),
    )


def fts_query(text: str) -> str:
    """Turn free text into a safe FTS5 query: every word must appear (prefix match on the last one)."""
    words = [w for w in text.replace("\x00", " ").split() if w.strip('"')]
    if not words:
        return ""
    quoted = ['"' + w.replace('"', '""') + '"' for w in words]
    quoted[-1] += "*"
    return " ".join(quoted)


def _title_from(text: str) -> str:
    first = next((line.strip() for line in text.splitlines() if line.strip()), "untitled")
    return first if len(first) <= 60 else first[:59] + "…"


class HistoryStore:
    """All history reads and writes. One connection, usable from worker threads (sqlite serialises)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn = connect(path)

    def close(self) -> None:
        self._conn.close()

    # -- writes ------------------------------------------------------------------------------------
    def new_conversation(self, title: str) -> int:
        now = time.time()
        cur = self._conn.execute(
            "INSERT INTO conversations(title, created, updated) VALUES (?, ?, ?)",
            (_title_from(title), now, now),
        )
        return int(cur.lastrowid or 0)

    def _insert(self, conversation_id: int, role: str, **cols: Any) -> int:
        now = time.time()
        cols = {"conversation_id": conversation_id, "role": role, "created": now, **cols}
        names = ", ".join(cols)
        marks = ", ".join("?" for _ in cols)
        try:
            cur = self._conn.execute(f"INSERT INTO messages({names}) VALUES ({marks})", tuple(cols.values()))
            self._conn.execute("UPDATE conversations SET updated = ? WHERE id = ?", (now, conversation_id))
        except sqlite3.IntegrityError as exc:
            raise StoreError(f"Conversation {conversation_id} does not exist in {self.path}.") from exc
        return int(cur.lastrowid or 0)

    def add_user(self, conversation_id: int, text: str) -> int:
        return self._insert(conversation_id, "user", content=text)

    def add_answer(self, conversation_id: int, answer: Answer) -> int:
        return self._insert(
            conversation_id,
            "assistant",
            content=answer.solution_text,
            thought=answer.thought,
            code=answer.code,
            backend=answer.backend,
            model=answer.model,
            bundle=answer.bundle,
            tokens=answer.tokens,
            seconds=answer.seconds,
            tokens_per_s=answer.tokens_per_s,
            cancelled=int(answer.cancelled),
            gates_json=gates_to_json(answer.gates),
        )

    def add_test_run(
        self, conversation_id: int, code: str, tests: Sequence[TestCase], verdicts: Sequence[Verdict]
    ) -> int:
        rows = [
            {"input": t.input, "expected": t.output, "kind": t.kind, "origin": t.origin, **v.as_dict()}
            for t, v in zip(tests, verdicts, strict=True)
        ]
        passed = sum(v.passed for v in verdicts)
        return self._insert(
            conversation_id,
            "tests",
            content=f"{passed}/{len(verdicts)} tests passed",
            code=code,
            verdicts_json=json.dumps(rows),
        )

    def add_deep(
        self, conversation_id: int, run_id: str | None, summary: str, code: str, spend_usd: float
    ) -> int:
        return self._insert(
            conversation_id, "deep", content=summary, code=code, deep_run_id=run_id, spend_usd=spend_usd
        )

    def delete_conversation(self, conversation_id: int) -> None:
        self._conn.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))

    # -- reads -------------------------------------------------------------------------------------
    def list_conversations(self, limit: int = 200) -> list[ConversationSummary]:
        rows = self._conn.execute(
            "SELECT c.id, c.title, c.created, c.updated, COUNT(m.id) AS n FROM conversations c "
            "LEFT JOIN messages m ON m.conversation_id = c.id GROUP BY c.id ORDER BY c.updated DESC, c.id DESC "
            "LIMIT ?",
            (limit,),
        ).fetchall()
        return [ConversationSummary(r["id"], r["title"], r["created"], r["updated"], r["n"]) for r in rows]

    def search(self, text: str, limit: int = 50) -> list[SearchHit]:
        query = fts_query(text)
        if not query:
            return []
        try:
            rows = self._conn.execute(
                "SELECT m.id, m.conversation_id, m.role, c.title, "
                "snippet(messages_fts, -1, '[', ']', '…', 12) AS snip "
                "FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid "
                "JOIN conversations c ON c.id = m.conversation_id "
                "WHERE messages_fts MATCH ? ORDER BY rank LIMIT ?",
                (query, limit),
            ).fetchall()
        except sqlite3.OperationalError as exc:
            raise StoreError(f"The history search for {text!r} failed: {exc}.") from exc
        return [SearchHit(r["conversation_id"], r["id"], r["title"], r["role"], r["snip"]) for r in rows]

    def load(self, conversation_id: int) -> Conversation:
        conv = self._conn.execute("SELECT * FROM conversations WHERE id = ?", (conversation_id,)).fetchone()
        if conv is None:
            raise StoreError(f"There is no conversation {conversation_id} in the history.")
        rows = self._conn.execute(
            "SELECT * FROM messages WHERE conversation_id = ? ORDER BY id", (conversation_id,)
        ).fetchall()
        return Conversation(conv["id"], conv["title"], conv["created"], tuple(_message(r) for r in rows))

    def export_markdown(self, conversation_id: int) -> str:
        return conversation_markdown(self.load(conversation_id))


def _message(r: sqlite3.Row) -> Message:
    return Message(
        id=r["id"],
        conversation_id=r["conversation_id"],
        role=r["role"],
        content=r["content"],
        thought=r["thought"],
        code=r["code"],
        backend=r["backend"],
        model=r["model"],
        bundle=r["bundle"],
        tokens=r["tokens"],
        seconds=r["seconds"],
        tokens_per_s=r["tokens_per_s"],
        cancelled=bool(r["cancelled"]),
        gates=gates_from_json(r["gates_json"]),
        verdicts=tuple(json.loads(r["verdicts_json"])) if r["verdicts_json"] else (),
        deep_run_id=r["deep_run_id"],
        spend_usd=r["spend_usd"],
        created=r["created"],
    )


def _fence(code: str, lang: str = "python") -> str:
    ticks = "```"
    while ticks in code:
        ticks += "`"
    return f"{ticks}{lang}\n{code.rstrip()}\n{ticks}"


def conversation_markdown(conv: Conversation) -> str:
    """A conversation as a standalone Markdown document (what Export writes)."""
    out = [f"# {conv.title}", "", f"_exported from bdc-assistant, conversation {conv.id}_", ""]
    for m in conv.messages:
        if m.role == "user":
            out += ["## Problem", "", m.content.rstrip(), ""]
        elif m.role == "assistant":
            note = " (cancelled)" if m.cancelled else ""
            out += [
                f"## Answer{note}",
                "",
                f"_{m.model} on {m.backend}, bundle {m.bundle or 'none'}, "
                f"{m.tokens} tokens, {m.tokens_per_s or 0:.1f} tok/s_",
                "",
            ]
            if m.thought.strip():
                out += ["### Plan", "", m.thought.rstrip(), ""]
            if m.code.strip():
                out += ["### Code", "", _fence(m.code), ""]
            if m.gates is not None:
                means = m.gates.expert_means()
                names = m.gates.cluster_names or tuple(f"expert {k}" for k in range(len(means)))
                out += ["### Mixture", "", "| expert | mean gate |", "|---|---|"]
                out += [f"| {n} | {v:.3f} |" for n, v in zip(names, means, strict=False)]
                out.append("")
        elif m.role == "tests":
            out += [f"## Tests: {m.content}", "", "| # | origin | status | seconds |", "|---|---|---|---|"]
            out += [
                f"| {i} | {v.get('origin', '')} | {v.get('status', '')} | {v.get('seconds', 0)} |"
                for i, v in enumerate(m.verdicts, 1)
            ]
            out.append("")
        elif m.role == "deep":
            out += [f"## Deep mode ({m.deep_run_id or 'run'}, ${m.spend_usd or 0:.4f})", "", m.content, ""]
            if m.code.strip():
                out += [_fence(m.code), ""]
    return "\n".join(out).rstrip() + "\n"


def open_history(path: Path | None = None) -> HistoryStore:
    """The history of this user (``app_paths().db_file``) or of ``path``."""
    if path is None:
        from ..paths import app_paths

        path = app_paths().db_file
    return HistoryStore(path)
