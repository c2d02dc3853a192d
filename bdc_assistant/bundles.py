"""The app-side registry of solver bundles: list, register, use, rollback, and what is active.

Registered bundles are copied into ``app_paths().bundles_dir/<id>/`` (validated first, copied to a temp
dir and renamed, so a half-copied bundle is never visible). ``active.json`` in that dir names the active
bundle and keeps a history stack for ``rollback``.

The app ships one bundle per base it knows (``assets/bundles/<name>/``: ``coder-0.5b`` for the embedded
Qwen2.5-Coder-0.5B, ``gemma-3-270m`` for the small test base). They share the id ``shipped``, the implicit
first entry, active on a fresh install: it means "the shipped bundle made for the base that is running".
Where none ships for the base, the app answers with the plain base and says so (``NO_BUNDLE_FOR_BASE``).
A shipped bundle whose own validation run put it *below* the plain base (the rule ``bdc retrain`` applies)
is not applied by default either; ``--bundle shipped`` asks for it anyway. Every switch is a
read-modify-write of ``active.json`` under an exclusive file lock and an atomic replace, so a crash or a
concurrent ``bdc retrain`` cannot leave a torn pointer.

Nothing here imports torch: listing bundles reads manifests only; ``register`` validates with the
(numpy-only) bundle loader.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import hashlib
import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import atomic
from .errors import BundleError
from .paths import app_paths
from .resources import assets_dir

if TYPE_CHECKING:
    from .disen.identity import BaseIdentity

SHIPPED_ID = "shipped"
ACTIVE_FILE = "active.json"
REGISTERED_FILE = "registered.json"  # written next to a registered bundle's files (not part of the bundle)
ASSETS_DIR = assets_dir()
NO_BUNDLE_FOR_BASE = "no bundle for this base: answering with the plain base"


@dataclass(frozen=True)
class BundleEntry:
    id: str
    path: Path
    source: str  # "registered" | "shipped"
    active: bool
    manifest: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @property
    def experts(self) -> int:
        return int(self.manifest.get("K", 0))

    @property
    def created_at(self) -> str:
        return str(self.manifest.get("provenance", {}).get("created_at", ""))

    def summary(self) -> dict[str, Any]:
        """The bundle as doctor / `bdc bundles list --json` show it."""
        m = self.manifest
        prov = m.get("provenance", {})
        return {
            "id": self.id,
            "path": str(self.path),
            "source": self.source,
            "active": self.active,
            "experts": int(m.get("K", 0)),
            "r": m.get("r"),
            "clusters": list(m.get("clusters", {}).get("names", [])),
            "base": m.get("base", {}),
            "encoder": m.get("encoder", {}),
            "data_hash": prov.get("data_hash"),
            "trajectories": prov.get("trajectories"),
            "bootstrap": prov.get("bootstrap"),
            "created_at": prov.get("created_at"),
            "metrics": m.get("metrics", {}).get("summary", m.get("metrics", {})),
        }


def shipped_bundle_dirs() -> list[Path]:
    """Every bundle this build ships (``assets/bundles/*/manifest.json``), in name order."""
    root = ASSETS_DIR / "bundles"
    if not root.is_dir():
        return []
    return sorted(d for d in root.iterdir() if d.is_dir() and (d / "manifest.json").is_file())


def shipped_bundle_dir(base: BaseIdentity | None = None) -> Path | None:
    """The shipped bundle made for ``base`` (None when this build ships none for it). Without ``base``: the
    first shipped bundle, a placeholder that :func:`fit_to_base` swaps for the running base's own."""
    dirs = shipped_bundle_dirs()
    if base is None:
        return dirs[0] if dirs else None
    for path in dirs:
        if base_mismatch(path, base) is None:
            return path
    return None


def is_shipped(path: Path) -> bool:
    try:
        resolved = Path(path).expanduser().resolve()
        return any(resolved == d.resolve() for d in shipped_bundle_dirs())
    except OSError:
        return False


def base_mismatch(path: Path, base: BaseIdentity) -> str | None:
    """One sentence naming both bases when the bundle at ``path`` cannot customize ``base`` (manifest only)."""
    from .disen.identity import BaseIdentity, mismatch_sentence

    try:
        bundle_base = BaseIdentity.from_dict(read_manifest(Path(path))["base"])
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"The manifest of bundle {path} has a malformed base entry: {exc}.") from exc
    return mismatch_sentence(bundle_base, base, Path(path))


def vs_base(manifest: dict[str, Any]) -> dict[str, Any] | None:
    """A bundle's paired comparison with the plain base from its own evaluation (same problems, same run)."""
    rows = ((manifest.get("metrics") or {}).get("evaluation") or {}).get("rows") or {}
    found = ((rows.get("DisenLoRA") or {}).get("overall") or {}).get("vs_base")
    return (
        found
        if isinstance(found, dict) and {"ac_diff", "ci95", "solved", "base_solved", "n"} <= set(found)
        else None
    )


def versus_base_text(vs: dict[str, Any]) -> str:
    lo, hi = vs["ci95"]
    return (
        f"{vs['solved']} of {vs['n']} validation problems against the plain base's {vs['base_solved']}, "
        f"{vs['ac_diff']:+.1f} points, 95 % CI [{lo:+.1f}, {hi:+.1f}]"
    )


def below_base(path: Path) -> str | None:
    """Why the bundle at ``path`` is not applied by default (its validation run put it below the plain base),
    or None when it is not worse (or carries no paired comparison)."""
    versus = vs_base(_safe_manifest(path))
    if versus is None or versus["ac_diff"] >= 0:
        return None
    return (
        "the shipped bundle for this base solves fewer validation problems than the plain base "
        f"({versus_base_text(versus)})"
    )


def fit_to_base(
    path: Path | None, note: str, base: BaseIdentity | None, *, asked: bool = False
) -> tuple[Path | None, str]:
    """Check the solver's bundle choice against the base it runs on.

    A shipped bundle stands for "the shipped bundle made for this base": it is swapped for the running base's
    own, or dropped when none ships (the app answers with the plain base and says so: ``NO_BUNDLE_FOR_BASE``).
    Unless ``asked`` (``--bundle shipped``), one whose validation run is below the plain base is dropped too,
    with that comparison as the note. A bundle the user chose by path (command line, settings, registered and
    made active) is kept, so loading it refuses with one sentence naming both bases.
    """
    if path is None or base is None or not is_shipped(path):
        return path, note
    own = shipped_bundle_dir(base)
    if own is None:
        return None, NO_BUNDLE_FOR_BASE
    if not asked and (why := below_base(own)) is not None:
        return None, f"{why}: answering with the plain base (`--bundle shipped` uses it)"
    return own, note


def _registry() -> Path:
    return app_paths().bundles_dir


def read_manifest(path: Path) -> dict[str, Any]:
    """A bundle's manifest.json as a dict; any other state is a BundleError with one sentence."""
    try:
        data = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise BundleError(f"The bundle {path} has no manifest.json.") from exc
    except (OSError, ValueError) as exc:
        raise BundleError(f"The manifest of bundle {path} is not valid JSON.") from exc
    if not isinstance(data, dict):
        raise BundleError(f"The manifest of bundle {path} is not a JSON object.")
    return data


# ---- the active pointer ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    reg = _registry()
    reg.mkdir(parents=True, exist_ok=True)
    with (reg / ".lock").open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _read_state() -> dict[str, Any]:
    path = _registry() / ACTIVE_FILE
    if not path.exists():
        return {"active": SHIPPED_ID, "history": []}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not isinstance(data.get("history", []), list):
            raise ValueError("bad shape")
    except (OSError, ValueError) as exc:
        raise BundleError(
            f"The active-bundle pointer {path} is corrupt; delete it to return to the default."
        ) from exc
    return {
        "active": str(data.get("active") or SHIPPED_ID),
        "history": [str(h) for h in data.get("history", [])],
    }


def _write_state(state: dict[str, Any]) -> None:
    atomic.write_json(_registry() / ACTIVE_FILE, {**state, "updated_at": _now()})


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def _path_of(bundle_id: str) -> Path | None:
    if bundle_id == SHIPPED_ID:
        return shipped_bundle_dir()
    path = _registry() / bundle_id
    return path if (path / "manifest.json").is_file() else None


# ---- queries --------------------------------------------------------------------------------------------


def list_bundles() -> list[BundleEntry]:
    """The shipped bundles (one per base, if any) and every registered one, oldest first."""
    state = _read_state()
    entries: list[BundleEntry] = []
    for shipped in shipped_bundle_dirs():  # one per base, all under the id "shipped"
        entries.append(
            BundleEntry(
                SHIPPED_ID, shipped, "shipped", state["active"] == SHIPPED_ID, _safe_manifest(shipped)
            )
        )
    reg = _registry()
    if reg.is_dir():
        regs = [
            d
            for d in reg.iterdir()
            if d.is_dir() and not d.name.startswith(".") and (d / "manifest.json").is_file()
        ]
        for d in sorted(regs, key=lambda p: (_registered_seq(p), p.name)):
            entries.append(BundleEntry(d.name, d, "registered", state["active"] == d.name, _safe_manifest(d)))
    return entries


def _registered_seq(path: Path) -> int:
    try:
        return int(json.loads((path / REGISTERED_FILE).read_text())["seq"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def _safe_manifest(path: Path) -> dict[str, Any]:
    try:
        return read_manifest(path)
    except BundleError:
        return {}


def active_entry(base: BaseIdentity | None = None) -> BundleEntry | None:
    """The active bundle; with ``base``, a shipped bundle made for another base does not count."""
    state = _read_state()
    active = state["active"]
    path = _path_of(active)
    if path is None and active != SHIPPED_ID:  # registered bundle deleted by hand: fall back to shipped
        active, path = SHIPPED_ID, shipped_bundle_dir()
    if path is not None and active == SHIPPED_ID and base is not None:
        path = shipped_bundle_dir(base)
    if path is None:
        return None
    return BundleEntry(
        active, path, "shipped" if active == SHIPPED_ID else "registered", True, _safe_manifest(path)
    )


def active_bundle_path() -> Path | None:
    """The active *registered* bundle's directory; None means "use the shipped default" (the solver's rule)."""
    entry = active_entry()
    return entry.path if entry is not None and entry.source == "registered" else None


def active_bundle_info(base: BaseIdentity | None = None) -> dict[str, Any] | None:
    """What ``bdc doctor --json`` shows as ``bundle``: id, source, experts, base identity, data hash, metrics."""
    entry = active_entry(base)
    if entry is None:
        return None
    info = entry.summary()
    info["new_trajectories"] = new_trajectories_since_active()
    return info


# ---- changes --------------------------------------------------------------------------------------------


def _new_id(manifest: dict[str, Any], src: Path) -> str:
    name = str(manifest.get("provenance", {}).get("run_name") or "bundle")
    name = "".join(c if c.isalnum() or c in "-_" else "-" for c in name)[:32] or "bundle"
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%d-%H%M%S")
    digest = hashlib.sha256(json.dumps(manifest.get("files", {}), sort_keys=True).encode()).hexdigest()[:8]
    return f"{name}-{stamp}-{digest}"


def register(src: Path, *, activate: bool = False, bundle_id: str | None = None) -> BundleEntry:
    """Validate the bundle at ``src`` and copy it into the registry; optionally make it active."""
    from .disen.bundle import load_bundle

    src = Path(src).expanduser()
    load_bundle(src)  # every file's sha256, shapes, K, r: a corrupt bundle is refused before anything changes
    manifest = read_manifest(src)
    bid = bundle_id or _new_id(manifest, src)
    if bid == SHIPPED_ID or "/" in bid or bid.startswith("."):
        raise BundleError(f"'{bid}' cannot be used as a bundle id.")
    reg = _registry()
    reg.mkdir(parents=True, exist_ok=True)
    dest = reg / bid
    if dest.exists():
        raise BundleError(f"A bundle with id {bid} is already registered.")
    with atomic.directory(dest) as tmp:
        shutil.copytree(src, tmp, dirs_exist_ok=True)
        (tmp / REGISTERED_FILE).write_text(
            json.dumps({"registered_at": _now(), "seq": time.time_ns(), "source": str(src.resolve())})
        )
    if activate:
        return use(bid)
    return BundleEntry(bid, dest, "registered", False, manifest)


def use(bundle_id: str) -> BundleEntry:
    """Make ``bundle_id`` active; the previous one goes on the history stack (for ``rollback``)."""
    with _locked():
        path = _path_of(bundle_id)
        if path is None:
            known = ", ".join(e.id for e in list_bundles()) or "none"
            raise BundleError(f"No bundle '{bundle_id}' is registered (known: {known}).")
        state = _read_state()
        if state["active"] != bundle_id:
            state["history"].append(state["active"])
            state["active"] = bundle_id
            _write_state(state)
    return BundleEntry(
        bundle_id, path, "shipped" if bundle_id == SHIPPED_ID else "registered", True, _safe_manifest(path)
    )


def rollback() -> BundleEntry:
    """Return to the previously active bundle (skipping ones deleted since)."""
    with _locked():
        state = _read_state()
        while state["history"]:
            prev = state["history"].pop()
            path = _path_of(prev)
            if path is not None and prev != state["active"]:
                state["active"] = prev
                _write_state(state)
                return BundleEntry(
                    prev, path, "shipped" if prev == SHIPPED_ID else "registered", True, _safe_manifest(path)
                )
        raise BundleError("There is no previous bundle to roll back to.")


# ---- new data since the active bundle ------------------------------------------------------------------


def trajectories_dir() -> Path:
    return app_paths().data_dir / "trajectories"


def _pending_store_runs() -> list[str]:
    """Finished deep-mode runs whose trajectories are not yet exported to ``trajectories/<run>.jsonl``.

    Reads the SQLite store only if it exists (counting must never create a database)."""
    db = app_paths().db_file
    if not db.exists():
        return []
    from .deep.collect import collect_run_ids
    from .deep.exports import safe_name
    from .store.runs import RunStore

    store = RunStore(db)
    try:
        runs = store.list_runs(limit=1_000_000)
        collected = collect_run_ids(store)  # `bdc collect` exports its runs itself (private tests checked)
    finally:
        store.close()
    tdir = trajectories_dir()
    return [
        r.run_id
        for r in runs
        if r.status == "finished"
        and r.run_id not in collected
        and not (tdir / f"{safe_name(r.run_id)}.jsonl").exists()
    ]


def count_trajectories() -> int:
    """Trajectories the app can train on: exported JSONL lines (negatives excluded) plus the verified pairs
    of finished, not yet exported deep runs (what their export will write)."""
    total = _count_jsonl()
    pending = _pending_store_runs()
    if pending:
        from .deep.exports import trajectories
        from .store.runs import RunStore

        store = RunStore(app_paths().db_file)
        try:
            total += sum(len(trajectories(store, rid)) for rid in pending)
        finally:
            store.close()
    return total


def sync_store_trajectories() -> list[Path]:
    """Export every finished deep-mode run not yet exported into ``trajectories/`` (what the trainer reads)."""
    pending = _pending_store_runs()
    if not pending:
        return []
    from .deep.exports import export_run
    from .store.runs import RunStore

    tdir = trajectories_dir()
    tdir.mkdir(parents=True, exist_ok=True)
    store = RunStore(app_paths().db_file)
    written: list[Path] = []
    try:
        for rid in pending:
            out = export_run(store, rid, "jsonl", tdir / "")
            if isinstance(out, list):
                written.extend(out)
    finally:
        store.close()
    return written


def _count_jsonl() -> int:
    """Non-empty lines of ``trajectories/*.jsonl`` that the trainer may train on (negatives do not count)."""
    total = 0
    d = trajectories_dir()
    if d.is_dir():
        for f in sorted(d.glob("*.jsonl")):
            try:
                with f.open("rb") as fh:
                    total += sum(1 for line in fh if line.strip() and not _negative_line(line))
            except OSError:
                continue
    return total


def _negative_line(line: bytes) -> bool:
    """A line ``bdc runs export --include-negatives`` marked as not verified (an unparsable line is not one)."""
    if b'"verified"' not in line and b'"negative"' not in line:
        return False
    try:
        obj = json.loads(line)
    except ValueError:
        return False
    return isinstance(obj, dict) and (obj.get("verified") is False or obj.get("negative") is True)


def new_trajectories_since_active() -> int:
    """How many trajectories arrived since the active bundle was trained (its manifest records the count
    it saw as ``provenance.app_trajectories_seen``; the shipped bundle saw none of the user's)."""
    entry = active_entry()
    seen = 0
    if entry is not None:
        try:
            seen = int(entry.manifest.get("provenance", {}).get("app_trajectories_seen") or 0)
        except (TypeError, ValueError):
            seen = 0
    return max(0, count_trajectories() - seen)
