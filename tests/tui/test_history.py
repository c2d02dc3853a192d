"""The history store: real SQLite file, FTS5 search, reopen, export, migrations."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bdc_assistant.errors import StoreError
from bdc_assistant.store.db import connect
from bdc_assistant.store.history import HistoryStore, fts_query, gates_from_json, gates_to_json, open_history
from bdc_assistant.types import Answer, Status, TestCase, Verdict
from tests.tui.fakes import fake_gates


def _answer(code: str = "print(1)", thought: str = "1. print one", cancelled: bool = False) -> Answer:
    return Answer("p", thought, code, code, "llamacpp", "gemma", "b1", 10, 0.5, 20.0, cancelled, fake_gates())


def test_round_trip_and_search(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "h.sqlite3")
    cid = store.new_conversation("Reverse a linked list\nin place")
    store.add_user(cid, "Reverse a linked list in place")
    store.add_answer(cid, _answer("def reverse(head):\n    prev = None\n", "walk the list with two pointers"))
    other = store.new_conversation("Count vowels")
    store.add_user(other, "Count vowels in a string")

    conv = store.load(cid)
    assert conv.title == "Reverse a linked list"
    assert [m.role for m in conv.messages] == ["user", "assistant"]
    assert conv.messages[1].gates == fake_gates()
    assert conv.messages[1].code.startswith("def reverse")

    hits = store.search("pointers")
    assert [(h.conversation_id, h.role) for h in hits] == [(cid, "assistant")]
    assert "[pointers]" in hits[0].snippet
    assert {h.conversation_id for h in store.search("vowel")} == {other}  # prefix match on the last word
    assert store.search("linked vowels") == []  # every word must match
    assert store.search("   ") == []
    # FTS5 syntax in user input is searched for, not parsed
    assert store.search('reverse" OR ( NEAR') == []
    assert store.search("def reverse(head):")[0].conversation_id == cid


def test_fts_query_quotes_everything() -> None:
    assert fts_query('a "b" c-d') == '"a" """b""" "c-d"*'
    assert fts_query('"') == ""


def test_delete_cascades_and_updates_index(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "h.sqlite3")
    cid = store.new_conversation("x")
    store.add_user(cid, "unique-word-zebra")
    assert store.search("zebra")
    store.delete_conversation(cid)
    assert store.search("zebra") == []
    assert store.list_conversations() == []
    with pytest.raises(StoreError, match="no conversation"):
        store.load(cid)


def test_unknown_conversation_is_one_sentence(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "h.sqlite3")
    with pytest.raises(StoreError, match="does not exist"):
        store.add_user(999, "x")


def test_tests_and_deep_runs_and_export(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "h.sqlite3")
    cid = store.new_conversation("Sum")
    store.add_user(cid, "Sum two ints")
    store.add_answer(cid, _answer("x = 1  # ``` inside", cancelled=True))
    tests = [TestCase("1 2\n", "3\n", origin="statement"), TestCase("5 5\n", "10\n", origin="user")]
    store.add_test_run(cid, "print(3)", tests, [Verdict(Status.PASS, seconds=0.1), Verdict(Status.WRONG)])
    store.add_deep(cid, "run-7", "best public PR 100%", "print(sum(map(int, input().split())))", 0.0123)
    conv = store.load(cid)
    assert [m.role for m in conv.messages] == ["user", "assistant", "tests", "deep"]
    assert conv.messages[2].content == "1/2 tests passed"
    assert conv.messages[2].verdicts[1]["status"] == "wrong"
    assert conv.messages[3].deep_run_id == "run-7"
    md = store.export_markdown(cid)
    assert md.startswith("# Sum\n")
    assert "## Answer (cancelled)" in md
    assert "````python\nx = 1  # ``` inside\n````" in md  # fence longer than any backticks inside
    assert "| greedy | " in md and "## Tests: 1/2 tests passed" in md
    assert "## Deep mode (run-7, $0.0123)" in md
    listed = store.list_conversations()
    assert listed[0].id == cid and listed[0].messages == 4


def test_gates_json_round_trip() -> None:
    g = fake_gates()
    assert gates_from_json(gates_to_json(g)) == g
    assert gates_to_json(None) is None and gates_from_json(None) is None


def test_open_history_uses_app_db_and_newer_schema_is_refused(bdc_home: Path) -> None:
    store = open_history()
    assert store.path == bdc_home / "data" / "bdc.sqlite3"
    store.close()
    conn = sqlite3.connect(bdc_home / "data" / "bdc.sqlite3")
    conn.execute("UPDATE schema_versions SET version = 99 WHERE component = 'history'")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer bdc-assistant"):
        connect(bdc_home / "data" / "bdc.sqlite3")
