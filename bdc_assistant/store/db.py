"""The app's SQLite database: one file in the data dir, WAL mode, per-component schema migrations.

Each component (deep-mode runs, chat history, …) registers an ordered list of migration scripts under
its own name; ``schema_versions`` records how far each component got. Opening a database written by a
newer version of the app (a component version above what this code knows) is refused with a clear
message instead of guessing.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

from ..errors import StoreError

_MIGRATIONS: dict[str, list[str]] = {}
_LOCK = threading.Lock()


def register_migrations(component: str, scripts: Sequence[str]) -> None:
    """Declare ``component``'s schema as an ordered list of SQL scripts (append-only across releases)."""
    _MIGRATIONS[component] = list(scripts)


def connect(path: Path, *, migrate: bool = True) -> sqlite3.Connection:
    """Open (creating if needed) the database at ``path`` with WAL and foreign keys, then migrate."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=30000")
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"The database {path} cannot be opened: {exc}.") from exc
    if migrate:
        apply_migrations(conn, path)
    return conn


def apply_migrations(conn: sqlite3.Connection, path: Path | str = "database") -> None:
    with _LOCK:
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_versions (component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
            )
            for component, scripts in _MIGRATIONS.items():
                row = conn.execute(
                    "SELECT version FROM schema_versions WHERE component = ?", (component,)
                ).fetchone()
                current = row[0] if row else 0
                if current > len(scripts):
                    raise StoreError(
                        f"The database {path} was written by a newer bdc-assistant "
                        f"({component} schema v{current}, this version knows v{len(scripts)}); upgrade the app."
                    )
                for version in range(current + 1, len(scripts) + 1):
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        for statement in _split_sql(scripts[version - 1]):
                            conn.execute(statement)
                        conn.execute(
                            "INSERT INTO schema_versions(component, version) VALUES (?, ?) "
                            "ON CONFLICT(component) DO UPDATE SET version = excluded.version",
                            (component, version),
                        )
                        conn.execute("COMMIT")
                    except Exception:
                        conn.execute("ROLLBACK")
                        raise
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"The database {path} is unreadable or corrupt: {exc}.") from exc


def _split_sql(script: str) -> list[str]:
    """Split a migration script into statements (sqlite3.complete_statement handles triggers)."""
    statements: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                statements.append(buf.strip())
            buf = ""
    if buf.strip():
        statements.append(buf.strip())
    return statements
