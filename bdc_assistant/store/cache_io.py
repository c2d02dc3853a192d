"""Move the LLM response cache between machines as JSON Lines (``bdc runs cache-export|cache-import``).

Why: a ``bdc deep-bench`` over every method takes hours on a laptop's CPU, and it resumes from this cache
(a cache hit counts as the call it replaces, so the resumed report is the one an unbroken run gives). The
cache lives in the user's data dir, which a second machine, or a fresh one, does not have. Exporting the
rows and importing them elsewhere carries the work done so far. Rows are content-addressed, so importing
the same file twice, or files that overlap, adds nothing twice; an existing row is never overwritten.

One JSON object a line (``.gz`` compresses): ``key`` (64 hex digits), ``provider``, ``base_url``, ``model``,
``request`` and ``response`` (objects), ``tokens_in``, ``tokens_out``, ``cost_usd``, ``created_at``. No API
key is ever in a row: the key is not part of a request, and endpoints are stored without credentials.
An import reads and checks the whole file before it writes anything: a bad line is reported with its number
and nothing is imported.

The same files carry deep-bench's recorded sandbox outcomes (:mod:`..deep.outcomes`), one a line, told apart
by ``"table": "sandbox_outcomes"``: ``key``, ``op``, ``value`` (any JSON), ``created_at``. A file written
before outcomes existed has none of these lines and imports as before.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, NamedTuple, cast

from ..errors import StoreError
from .runs import RunStore

COLUMNS = (
    "key",
    "provider",
    "base_url",
    "model",
    "request_json",
    "response_json",
    "tokens_in",
    "tokens_out",
    "cost_usd",
    "created_at",
)
OUTCOME_COLUMNS = ("key", "op", "value_json", "created_at")
OUTCOMES = "sandbox_outcomes"
_KEY = re.compile(r"^[0-9a-f]{64}$")


class Counts(NamedTuple):
    responses: int
    outcomes: int


def _open(path: Path, mode: str, *, gz: bool) -> IO[str]:
    if gz:
        return cast(IO[str], gzip.open(path, mode + "t", encoding="utf-8"))
    return path.open(mode, encoding="utf-8")


def export_cache(store: RunStore, out: Path, *, since: float = 0.0) -> Counts:
    """Write every cached response and recorded sandbox outcome created at or after ``since`` (epoch
    seconds) to ``out``; how many of each."""
    rows = store.cache_rows(COLUMNS, since)
    outcomes = store.cache_rows(OUTCOME_COLUMNS, since, table=OUTCOMES)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    with _open(tmp, "w", gz=out.suffix == ".gz") as f:
        for r in rows:
            row = dict(zip(COLUMNS, r, strict=True))
            row["request"] = json.loads(row.pop("request_json"))
            row["response"] = json.loads(row.pop("response_json"))
            f.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
        for r in outcomes:
            row = dict(zip(OUTCOME_COLUMNS, r, strict=True))
            row["value"] = json.loads(row.pop("value_json"))
            row["table"] = OUTCOMES
            f.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
    tmp.replace(out)  # a killed export leaves the old file, never half a new one
    return Counts(len(rows), len(outcomes))


def _require(obj: dict[str, Any], fields: tuple[str, ...], where: str) -> None:
    """Every row kind: its fields present and a 64-hex-digit ``key``."""
    missing = [c for c in fields if c not in obj]
    if missing:
        raise StoreError(f"{where} lacks {', '.join(missing)}; nothing was imported.")
    if not isinstance(obj["key"], str) or not _KEY.match(obj["key"]):
        raise StoreError(f"{where} has a key that is not 64 hex digits; nothing was imported.")


def _outcome_row(obj: dict[str, Any], where: str) -> tuple[Any, ...]:
    _require(obj, ("key", "op", "value"), where)
    try:
        created = float(obj.get("created_at", 0.0))
    except (TypeError, ValueError) as exc:
        raise StoreError(f"{where} has a time that is not a number; nothing was imported.") from exc
    return (
        obj["key"],
        str(obj["op"]),
        json.dumps(obj["value"], ensure_ascii=False, sort_keys=True),
        created,
    )


def _row(line: str, where: str, scrub: Callable[[str], str]) -> tuple[Any, ...]:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise StoreError(f"{where} is not JSON ({exc.msg}); nothing was imported.") from exc
    if not isinstance(obj, dict):
        raise StoreError(f"{where} is not a cache row (a JSON object); nothing was imported.")
    if "table" in obj:
        if obj["table"] != OUTCOMES:
            raise StoreError(f"{where} names an unknown table {obj['table']!r}; nothing was imported.")
        return (OUTCOMES, *_outcome_row(obj, where))
    _require(obj, ("key", "provider", "base_url", "model", "request", "response"), where)
    if not isinstance(obj["request"], dict) or not isinstance(obj["response"], dict):
        raise StoreError(f"{where} has a request or response that is not an object; nothing was imported.")
    try:
        numbers = (
            int(obj.get("tokens_in", 0)),
            int(obj.get("tokens_out", 0)),
            float(obj.get("cost_usd", 0.0)),
        )
        created = float(obj.get("created_at", 0.0))
    except (TypeError, ValueError) as exc:
        raise StoreError(
            f"{where} has a token count, cost or time that is not a number; nothing was imported."
        ) from exc
    return (
        "llm_cache",
        obj["key"],
        str(obj["provider"]),
        str(obj["base_url"]),
        str(obj["model"]),
        scrub(json.dumps(obj["request"], ensure_ascii=False, sort_keys=True)),
        scrub(json.dumps(obj["response"], ensure_ascii=False, sort_keys=True)),
        *numbers,
        created,
    )


def import_cache(store: RunStore, src: Path) -> tuple[Counts, Counts]:
    """Add the rows of ``src`` that the store lacks: (added, already there), responses and outcomes apart."""
    rows: list[tuple[Any, ...]] = []
    try:
        with _open(src, "r", gz=src.suffix == ".gz") as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    rows.append(_row(line, f"Line {n} of {src}", store.scrub))
    except OSError as exc:  # gzip.BadGzipFile is an OSError too
        raise StoreError(f"Cannot read the cache file {src}: {exc}.") from exc
    except UnicodeDecodeError as exc:
        raise StoreError(f"The cache file {src} is not UTF-8 text; nothing was imported.") from exc
    responses = [r[1:] for r in rows if r[0] == "llm_cache"]
    outcomes = [r[1:] for r in rows if r[0] == OUTCOMES]
    # One transaction per table. No row is ever overwritten, so importing the file again completes an
    # import that was killed between the two.
    added = Counts(
        store.cache_add_rows(COLUMNS, responses),
        store.cache_add_rows(OUTCOME_COLUMNS, outcomes, table=OUTCOMES),
    )
    return added, Counts(len(responses) - added.responses, len(outcomes) - added.outcomes)
