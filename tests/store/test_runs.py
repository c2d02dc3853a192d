"""The deep-mode store: migrations, atomic checkpoints, events, content-addressed cache, consent, scrub."""

from __future__ import annotations

import sqlite3

import pytest

from bdc_assistant.errors import StoreError
from bdc_assistant.store.db import connect
from bdc_assistant.store.runs import RunStore, pid_alive


def tree(n: int, rollout: int) -> dict:
    nodes = [
        {
            "id": i,
            "parent": None if i == 0 else 0,
            "thoughts": [] if i == 0 else [f"t{i}"],
            "status": "open",
            "pr": 0.5,
            "visits": 1,
        }
        for i in range(n)
    ]
    return {"nodes": nodes, "rollout": rollout}


def test_schema_is_registered_and_versioned(tmp_path) -> None:
    s = RunStore(tmp_path / "x.sqlite3")
    version = s.conn.execute("SELECT version FROM schema_versions WHERE component = 'deep'").fetchone()[0]
    assert version == 2
    assert s.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    s.conn.execute("UPDATE schema_versions SET version = 99 WHERE component = 'deep'")
    s.close()
    with pytest.raises(StoreError, match="newer"):
        connect(tmp_path / "x.sqlite3")


def test_a_v1_database_gains_the_outcomes_table_and_keeps_its_cache(tmp_path) -> None:
    s = RunStore(tmp_path / "x.sqlite3")
    s.cache_put(
        "a" * 64, provider="p", base_url="u", model="m", request={}, response={"text": "kept"},
        tokens_in=1, tokens_out=1, cost_usd=0.0,
    )  # fmt: skip
    s.conn.execute("DROP TABLE sandbox_outcomes")  # as a database written before v2
    s.conn.execute("UPDATE schema_versions SET version = 1 WHERE component = 'deep'")
    s.close()
    again = RunStore(tmp_path / "x.sqlite3")
    assert again.cache_get("a" * 64) == {"text": "kept"}
    again.outcome_put("b" * 64, "private", "0.5")
    again.outcome_put("b" * 64, "private", "1.0")  # the first outcome recorded stays
    assert again.outcome_get("b" * 64) == "0.5" and again.outcome_get("c" * 64) is None


def test_checkpoints_upsert_nodes_and_append_events_once(tmp_path) -> None:
    s = RunStore(tmp_path / "x.sqlite3")
    s.create_run("r1", {"id": "p", "statement": "s", "public_tests": []}, {"a": 1}, [{"spec": "x"}])
    s.checkpoint("r1", tree(2, 1), {"calls": 2}, [(1.0, 1, "NodeAdded", 1, {"node_id": 1})])
    s.checkpoint("r1", tree(3, 2), {"calls": 4}, [(2.0, 2, "NodeAdded", 2, {"node_id": 2})])
    assert [n["id"] for n in s.nodes("r1")] == [0, 1, 2]
    assert [(e["seq"], e["node_id"]) for e in s.events("r1")] == [(0, 1), (1, 2)]
    row = s.get_run("r1")
    assert row.checkpoint_rollout == 2 and row.meter == {"calls": 4} and row.status == "running"


def test_failed_checkpoint_leaves_the_previous_one_intact(tmp_path) -> None:
    s = RunStore(tmp_path / "x.sqlite3")
    s.create_run("r1", {"id": "p", "statement": "s", "public_tests": []}, {}, [])
    s.checkpoint("r1", tree(2, 1), {"calls": 2}, [])
    bad = tree(3, 2)
    bad["nodes"][2]["thoughts"] = None  # len(None) fails mid-transaction
    with pytest.raises(TypeError):
        s.checkpoint("r1", bad, {"calls": 4}, [(2.0, 2, "NodeAdded", 2, {})])
    assert [n["id"] for n in s.nodes("r1")] == [0, 1]
    assert s.events("r1") == [] and s.get_run("r1").checkpoint_rollout == 1


def test_cache_is_content_addressed_and_idempotent(tmp_path) -> None:
    s = RunStore(tmp_path / "x.sqlite3")
    kw = dict(
        provider="openai",
        base_url="http://h/v1",
        model="m",
        request={"q": 1},
        tokens_in=3,
        tokens_out=4,
        cost_usd=0.0,
    )
    assert s.cache_get("k") is None
    s.cache_put("k", response={"text": "first"}, **kw)
    s.cache_put("k", response={"text": "second"}, **kw)
    assert s.cache_get("k") == {"text": "first"}


def test_scrub_applies_to_everything_written(tmp_path) -> None:
    s = RunStore(tmp_path / "x.sqlite3", scrub=lambda t: t.replace("sk-SECRET", "[REDACTED]"))
    s.create_run("r1", {"id": "p", "statement": "sk-SECRET", "public_tests": []}, {"k": "sk-SECRET"}, [])
    s.checkpoint(
        "r1", tree(1, 0) | {"note": "sk-SECRET"}, {"m": "sk-SECRET"}, [(0.0, 0, "E", 0, {"x": "sk-SECRET"})]
    )
    s.cache_put(
        "k",
        provider="p",
        base_url="http://sk-SECRET",
        model="m",
        request={"r": "sk-SECRET"},
        response={"text": "sk-SECRET"},
        tokens_in=0,
        tokens_out=0,
        cost_usd=0,
    )
    s.close()
    con = sqlite3.connect(tmp_path / "x.sqlite3")
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    assert b"sk-SECRET" not in (tmp_path / "x.sqlite3").read_bytes()


def test_unknown_run_and_pid_checks(tmp_path) -> None:
    s = RunStore(tmp_path / "x.sqlite3")
    with pytest.raises(StoreError, match="bdc runs list"):
        s.get_run("missing")
    assert pid_alive(None) is False
    assert pid_alive(2**22 + 12345) is False
