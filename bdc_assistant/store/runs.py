"""Deep-mode persistence: runs, nodes, events, checkpoints, the LLM response cache, and consent.

One SQLite file (``app_paths().db_file``, WAL). A checkpoint is one transaction that upserts every node,
appends the events buffered since the last checkpoint and stores the whole tree plus the meter, so a run
killed with ``kill -9`` resumes from its last finished rollout with no node lost or duplicated. The LLM
cache is content-addressed (sha256 of provider kind, endpoint, model, messages, parameters and sample
index; never the key), so a resumed or replayed run gets the same responses and builds the same tree.

Every text this module writes goes through the store's ``scrub`` (the run's :class:`~bdc_assistant.keys.Redactor`).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import StoreError
from ..paths import app_paths
from .db import connect, register_migrations

MIGRATIONS = [
    """
    CREATE TABLE deep_runs (
        run_id TEXT PRIMARY KEY,
        problem_id TEXT NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        status TEXT NOT NULL,              -- running | finished | failed
        stopped_by TEXT,
        pid INTEGER,
        config_json TEXT NOT NULL,
        problem_json TEXT NOT NULL,        -- the public view only: statement + public tests
        agents_json TEXT NOT NULL,         -- specs, never keys
        result_json TEXT,
        meter_json TEXT,
        checkpoint_json TEXT,
        checkpoint_rollout INTEGER
    );
    CREATE TABLE deep_nodes (
        run_id TEXT NOT NULL REFERENCES deep_runs(run_id) ON DELETE CASCADE,
        node_id INTEGER NOT NULL,
        parent_id INTEGER,
        depth INTEGER NOT NULL,
        status TEXT NOT NULL,
        pr REAL,
        visits INTEGER NOT NULL,
        data_json TEXT NOT NULL,
        PRIMARY KEY (run_id, node_id)
    );
    CREATE TABLE deep_events (
        run_id TEXT NOT NULL REFERENCES deep_runs(run_id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        ts REAL NOT NULL,
        rollout INTEGER,
        kind TEXT NOT NULL,
        node_id INTEGER,
        payload_json TEXT NOT NULL,
        PRIMARY KEY (run_id, seq)
    );
    CREATE TABLE llm_cache (
        key TEXT PRIMARY KEY,
        provider TEXT NOT NULL,
        base_url TEXT NOT NULL,
        model TEXT NOT NULL,
        request_json TEXT NOT NULL,
        response_json TEXT NOT NULL,
        tokens_in INTEGER NOT NULL,
        tokens_out INTEGER NOT NULL,
        cost_usd REAL NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE TABLE deep_consent (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        version INTEGER NOT NULL,
        granted_at REAL NOT NULL,
        scope TEXT NOT NULL,               -- always | run
        run_id TEXT,
        recipients_json TEXT NOT NULL,
        text_sha256 TEXT NOT NULL
    );
    """,
    # v2: sandbox outcomes recorded by deep-bench (:mod:`..deep.outcomes`), exported beside the LLM cache.
    """
    CREATE TABLE sandbox_outcomes (
        key TEXT PRIMARY KEY,              -- sha256 of the operation, the program, the tests and the limits
        op TEXT NOT NULL,                  -- evaluate | trace | probe | private
        value_json TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    """,
]
register_migrations("deep", MIGRATIONS)

# The tables `bdc runs cache-export|cache-import` carry (:mod:`.cache_io`); nothing else is named in SQL text.
CACHE_TABLES = ("llm_cache", "sandbox_outcomes")


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


@dataclass(frozen=True)
class RunRow:
    run_id: str
    problem_id: str
    created_at: float
    updated_at: float
    status: str
    stopped_by: str | None
    pid: int | None
    config: dict[str, Any]
    problem: dict[str, Any]
    agents: list[dict[str, Any]]
    result: dict[str, Any] | None
    meter: dict[str, Any] | None
    checkpoint: dict[str, Any] | None
    checkpoint_rollout: int | None


class RunStore:
    """Thread-safe enough for one writer thread per run (SQLite serialises; WAL lets readers go on)."""

    def __init__(self, path: Path | None = None, *, scrub: Callable[[str], str] = lambda s: s) -> None:
        self.path = path or app_paths().db_file
        self.conn: sqlite3.Connection = connect(self.path)
        self.scrub = scrub

    def close(self) -> None:
        self.conn.close()

    def _dump(self, obj: Any) -> str:
        return self.scrub(json.dumps(obj, ensure_ascii=False, sort_keys=True))

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"The database {self.path} is unavailable: {exc}.") from exc
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")

    # ---- runs ---------------------------------------------------------------------------------------

    def create_run(
        self,
        run_id: str,
        problem: dict[str, Any],
        config: dict[str, Any],
        agents: Sequence[dict[str, Any]],
    ) -> None:
        now = time.time()
        with self._tx() as c:
            c.execute(
                "INSERT INTO deep_runs(run_id, problem_id, created_at, updated_at, status, pid, config_json,"
                " problem_json, agents_json) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    run_id,
                    problem["id"],
                    now,
                    now,
                    "running",
                    os.getpid(),
                    self._dump(config),
                    self._dump(problem),
                    self._dump(list(agents)),
                ),
            )

    def claim(self, run_id: str) -> None:
        """Mark this process as the run's owner (resume)."""
        with self._tx() as c:
            c.execute(
                "UPDATE deep_runs SET pid = ?, status = 'running', updated_at = ? WHERE run_id = ?",
                (os.getpid(), time.time(), run_id),
            )

    def update_problem(self, run_id: str, problem: dict[str, Any], meter: dict[str, Any]) -> None:
        """Store a run's problem again (generated tests added) together with the meter that paid for them."""
        with self._tx() as c:
            c.execute(
                "UPDATE deep_runs SET problem_json = ?, meter_json = ?, updated_at = ? WHERE run_id = ?",
                (self._dump(problem), self._dump(meter), time.time(), run_id),
            )

    def mark_failed(self, run_id: str) -> None:
        """A run stopped by an unexpected error: keep what was checkpointed and leave it resumable."""
        with self._tx() as c:
            c.execute(
                "UPDATE deep_runs SET pid = NULL, status = 'failed', updated_at = ? WHERE run_id = ?",
                (time.time(), run_id),
            )

    def checkpoint(
        self,
        run_id: str,
        tree: dict[str, Any],
        meter: dict[str, Any],
        events: Sequence[tuple[float, int | None, str, int | None, dict[str, Any]]],
    ) -> None:
        """Atomically: upsert all nodes, append events, store tree + meter."""
        with self._tx() as c:
            self._write_nodes(c, run_id, tree)
            row = c.execute(
                "SELECT COALESCE(MAX(seq), -1) FROM deep_events WHERE run_id = ?", (run_id,)
            ).fetchone()
            seq = int(row[0]) + 1
            for ts, rollout, kind, node_id, payload in events:
                c.execute(
                    "INSERT INTO deep_events(run_id, seq, ts, rollout, kind, node_id, payload_json)"
                    " VALUES (?,?,?,?,?,?,?)",
                    (run_id, seq, ts, rollout, kind, node_id, self._dump(payload)),
                )
                seq += 1
            c.execute(
                "UPDATE deep_runs SET checkpoint_json = ?, checkpoint_rollout = ?, meter_json = ?, updated_at = ?"
                " WHERE run_id = ?",
                (self._dump(tree), tree["rollout"], self._dump(meter), time.time(), run_id),
            )

    def _write_nodes(self, c: sqlite3.Connection, run_id: str, tree: dict[str, Any]) -> None:
        for node in tree["nodes"]:
            c.execute(
                "INSERT INTO deep_nodes(run_id, node_id, parent_id, depth, status, pr, visits, data_json)"
                " VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(run_id, node_id) DO UPDATE SET"
                " parent_id = excluded.parent_id, depth = excluded.depth, status = excluded.status,"
                " pr = excluded.pr, visits = excluded.visits, data_json = excluded.data_json",
                (
                    run_id,
                    node["id"],
                    node["parent"],
                    len(node["thoughts"]),
                    node["status"],
                    node["pr"],
                    node["visits"],
                    self._dump(node),
                ),
            )

    def finish(
        self,
        run_id: str,
        *,
        status: str,
        stopped_by: str,
        result: dict[str, Any],
        tree: dict[str, Any],
        meter: dict[str, Any],
        events: Sequence[tuple[float, int | None, str, int | None, dict[str, Any]]],
    ) -> None:
        self.checkpoint(run_id, tree, meter, events)
        with self._tx() as c:
            c.execute(
                "UPDATE deep_runs SET status = ?, stopped_by = ?, result_json = ?, pid = NULL, updated_at = ?"
                " WHERE run_id = ?",
                (status, stopped_by, self._dump(result), time.time(), run_id),
            )

    def get_run(self, run_id: str) -> RunRow:
        row = self.conn.execute("SELECT * FROM deep_runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise StoreError(f"No deep-mode run with id '{run_id}'; `bdc runs list` shows the ids.")
        return _row(row)

    def list_runs(self, limit: int = 50) -> list[RunRow]:
        rows = self.conn.execute(
            "SELECT * FROM deep_runs ORDER BY created_at DESC LIMIT ?", (limit,)
        ).fetchall()
        return [_row(r) for r in rows]

    def nodes(self, run_id: str) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT data_json FROM deep_nodes WHERE run_id = ? ORDER BY node_id", (run_id,)
        ).fetchall()
        return [json.loads(r[0]) for r in rows]

    def events(self, run_id: str) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT seq, ts, rollout, kind, node_id, payload_json FROM deep_events WHERE run_id = ? ORDER BY seq",
            (run_id,),
        ).fetchall()
        return [
            {
                "seq": r[0],
                "ts": r[1],
                "rollout": r[2],
                "kind": r[3],
                "node_id": r[4],
                "payload": json.loads(r[5]),
            }
            for r in rows
        ]

    # ---- LLM cache ------------------------------------------------------------------------------------

    def cache_get(self, key: str) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT response_json FROM llm_cache WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def cache_rows(
        self, columns: Sequence[str], since: float = 0.0, *, table: str = "llm_cache"
    ) -> list[tuple[Any, ...]]:
        """Raw rows of a cache table created at or after ``since``, oldest first (for :mod:`.cache_io`)."""
        _cache_table(table)
        return self.conn.execute(
            f"SELECT {', '.join(columns)} FROM {table} WHERE created_at >= ? ORDER BY created_at, key",
            (since,),
        ).fetchall()

    def cache_add_rows(
        self, columns: Sequence[str], rows: Sequence[tuple[Any, ...]], *, table: str = "llm_cache"
    ) -> int:
        """Insert raw rows in one transaction, keeping any row already cached; how many were new."""
        _cache_table(table)
        added = 0
        marks = ", ".join("?" * len(columns))
        with self._tx() as c:
            for row in rows:
                cur = c.execute(f"INSERT OR IGNORE INTO {table}({', '.join(columns)}) VALUES ({marks})", row)
                added += cur.rowcount
        return added

    # ---- sandbox outcomes (deep-bench replays) ---------------------------------------------------------

    def outcome_get(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value_json FROM sandbox_outcomes WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else None

    def outcome_put(self, key: str, op: str, value_json: str) -> None:
        """Record an outcome unless one is already recorded under ``key`` (the first one recorded stays)."""
        with self._tx() as c:
            c.execute(
                "INSERT OR IGNORE INTO sandbox_outcomes(key, op, value_json, created_at) VALUES (?,?,?,?)",
                (key, op, value_json, time.time()),
            )

    def cache_put(
        self,
        key: str,
        *,
        provider: str,
        base_url: str,
        model: str,
        request: dict[str, Any],
        response: dict[str, Any],
        tokens_in: int,
        tokens_out: int,
        cost_usd: float,
    ) -> None:
        with self._tx() as c:
            c.execute(
                "INSERT OR IGNORE INTO llm_cache(key, provider, base_url, model, request_json, response_json,"
                " tokens_in, tokens_out, cost_usd, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    key,
                    provider,
                    self.scrub(base_url),
                    model,
                    self._dump(request),
                    self._dump(response),
                    tokens_in,
                    tokens_out,
                    cost_usd,
                    time.time(),
                ),
            )

    # ---- consent ------------------------------------------------------------------------------------

    def add_consent(
        self, version: int, scope: str, run_id: str | None, recipients: Sequence[str], sha: str
    ) -> None:
        with self._tx() as c:
            c.execute(
                "INSERT INTO deep_consent(version, granted_at, scope, run_id, recipients_json, text_sha256)"
                " VALUES (?,?,?,?,?,?)",
                (version, time.time(), scope, run_id, json.dumps(sorted(recipients)), sha),
            )

    def consents(self) -> list[dict[str, Any]]:
        rows = self.conn.execute("SELECT * FROM deep_consent ORDER BY id").fetchall()
        return [dict(r) | {"recipients": json.loads(r["recipients_json"])} for r in rows]


def _cache_table(table: str) -> None:
    if table not in CACHE_TABLES:
        raise ValueError(f"not a cache table: {table!r}")


def _row(r: sqlite3.Row) -> RunRow:
    def load(v: str | None) -> Any:
        return json.loads(v) if v else None

    return RunRow(
        run_id=r["run_id"],
        problem_id=r["problem_id"],
        created_at=r["created_at"],
        updated_at=r["updated_at"],
        status=r["status"],
        stopped_by=r["stopped_by"],
        pid=r["pid"],
        config=load(r["config_json"]),
        problem=load(r["problem_json"]),
        agents=load(r["agents_json"]),
        result=load(r["result_json"]),
        meter=load(r["meter_json"]),
        checkpoint=load(r["checkpoint_json"]),
        checkpoint_rollout=r["checkpoint_rollout"],
    )


def pid_alive(pid: int | None) -> bool:
    if not pid or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (killed child not yet reaped) is not alive for our purposes
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True
