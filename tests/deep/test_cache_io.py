"""The LLM response cache carried between machines (``bdc runs cache-export|cache-import``): a round trip
keeps every response under its key, an import never overwrites and is all-or-nothing, and a deep run
repeated on a second home from the imported cache sends no request and gives the same answer."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from bdc_assistant.errors import StoreError
from bdc_assistant.store.cache_io import Counts, export_cache, import_cache
from bdc_assistant.store.runs import RunStore

from .httpfakes import FakeLLMServer, Script, adder_responder
from .test_cli_deep import STATEMENT, cli


def _put(store: RunStore, key: str, text: str) -> None:
    store.cache_put(
        key,
        provider="openai",
        base_url="http://127.0.0.1:18105/v1",
        model="qwen0.5b",
        request={"messages": [["user", f"q {key[:4]}"]], "model": "qwen0.5b"},
        response={"text": text, "finish_reason": "stop"},
        tokens_in=11,
        tokens_out=7,
        cost_usd=0.0,
    )


KEYS = [c * 64 for c in "abc"]


def test_round_trip_keeps_every_response_under_its_key(tmp_path: Path) -> None:
    a = RunStore(tmp_path / "a.sqlite3")
    for k in KEYS:
        _put(a, k, f"answer {k[0]} — ünïcode")
    out = tmp_path / "cache.jsonl.gz"
    assert export_cache(a, out) == Counts(responses=3, outcomes=0)
    with gzip.open(out, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    assert [r["key"] for r in rows] == KEYS and rows[0]["tokens_in"] == 11
    b = RunStore(tmp_path / "b.sqlite3")
    assert import_cache(b, out) == (Counts(3, 0), Counts(0, 0))
    for k in KEYS:
        assert b.cache_get(k) == a.cache_get(k)
    # content-addressed: a second import adds nothing
    assert import_cache(b, out) == (Counts(0, 0), Counts(3, 0))


def test_since_exports_only_the_newer_rows(tmp_path: Path) -> None:
    a = RunStore(tmp_path / "a.sqlite3")
    _put(a, KEYS[0], "old")
    a.conn.execute("UPDATE llm_cache SET created_at = 100.0")
    a.conn.commit()
    _put(a, KEYS[1], "new")
    assert export_cache(a, tmp_path / "all.jsonl").responses == 2
    assert export_cache(a, tmp_path / "new.jsonl", since=200.0).responses == 1
    assert json.loads((tmp_path / "new.jsonl").read_text())["key"] == KEYS[1]


def test_an_import_never_overwrites_a_cached_response(tmp_path: Path) -> None:
    a, b = RunStore(tmp_path / "a.sqlite3"), RunStore(tmp_path / "b.sqlite3")
    _put(a, KEYS[0], "theirs")
    _put(b, KEYS[0], "mine")
    export_cache(a, tmp_path / "c.jsonl")
    assert import_cache(b, tmp_path / "c.jsonl") == (Counts(0, 0), Counts(1, 0))
    assert b.cache_get(KEYS[0])["text"] == "mine"


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ("{not json", "Line 2 of"),
        ('["a list"]', "is not a cache row"),
        (
            '{"key": "k", "provider": "p", "base_url": "u", "model": "m", "request": {}, "response": {}}',
            "64 hex",
        ),
        (
            json.dumps({"key": "d" * 64, "provider": "p", "base_url": "u", "model": "m", "request": {}}),
            "lacks",
        ),
        (
            json.dumps(
                {
                    "key": "d" * 64,
                    "provider": "p",
                    "base_url": "u",
                    "model": "m",
                    "request": {},
                    "response": {},
                }
                | {"tokens_in": "many"}
            ),
            "not a number",
        ),
    ],
)
def test_a_bad_line_is_one_sentence_and_nothing_is_imported(tmp_path: Path, bad: str, says: str) -> None:
    a = RunStore(tmp_path / "a.sqlite3")
    _put(a, KEYS[0], "good")
    export_cache(a, tmp_path / "c.jsonl")
    f = tmp_path / "c.jsonl"
    f.write_text(f.read_text() + bad + "\n")
    b = RunStore(tmp_path / "b.sqlite3")
    with pytest.raises(StoreError, match=says) as err:
        import_cache(b, f)
    assert "nothing was imported" in str(err.value) and "\n" not in str(err.value)
    assert b.cache_get(KEYS[0]) is None  # the good first line was not written either


def test_a_file_that_is_not_gzip_or_not_there_is_one_sentence(tmp_path: Path) -> None:
    b = RunStore(tmp_path / "b.sqlite3")
    (tmp_path / "x.jsonl.gz").write_text("plain text, not gzip")
    for path in (tmp_path / "x.jsonl.gz", tmp_path / "missing.jsonl"):
        with pytest.raises(StoreError, match="Cannot read the cache file"):
            import_cache(b, path)


@pytest.mark.slow
def test_a_deep_run_repeated_on_a_second_home_from_the_imported_cache_sends_nothing(
    tmp_path: Path, bdc_home: Path
) -> None:
    tests = tmp_path / "tests.json"
    tests.write_text(json.dumps([{"input": "6 7\n", "output": "13\n"}]))
    second = tmp_path / "second_home"
    second.mkdir()
    with FakeLLMServer(Script(adder_responder)) as srv:
        argv = ["deep", STATEMENT, "--tests", str(tests), "--agent", f"openai:{srv.url}:model-a"]
        argv += ["--max-calls", "6", "--yes", "--json"]
        first = cli(argv, bdc_home)
        assert first.returncode == 0, first.stderr
        sent = len(srv.script.requests)
        assert sent >= 1
        exported = cli(["runs", "cache-export", str(tmp_path / "c.jsonl.gz")], bdc_home)
        assert exported.returncode == 0 and f"{sent} cached responses" in exported.stdout
        imported = cli(["runs", "cache-import", str(tmp_path / "c.jsonl.gz")], second)
        assert imported.returncode == 0 and f"{sent} responses added" in imported.stdout
        again = cli(argv, second)
        assert again.returncode == 0, again.stderr
        assert len(srv.script.requests) == sent  # every call was a cache hit
    a, b = json.loads(first.stdout), json.loads(again.stdout)
    assert (b["best_code"], b["public_pass_rate"], b["calls"]) == (
        a["best_code"],
        a["public_pass_rate"],
        a["calls"],
    )
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{oops\n")
    r = cli(["runs", "cache-import", str(bad)], second)
    assert (
        r.returncode == 10
        and r.stderr.startswith("bdc: Line 1 of")
        and len(r.stderr.strip().splitlines()) == 1
    )
