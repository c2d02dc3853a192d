"""Stage bookkeeping: where each stage writes, when a finished stage may be skipped, what is recorded.

Each stage owns ``OUT/<stage>/`` and finishes by writing ``OUT/<stage>/stage.json`` with its key, the
resolved config, the data hash, its metrics and its wall time. The key hashes the config sections the
stage depends on plus the keys of the stages it reads, so editing ``sft.lr`` reruns sft and everything
downstream while ``data`` and ``cluster`` are skipped. A stage that crashed has no ``stage.json``; its
directory is cleared and it runs again.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bdc_assistant import atomic
from bdc_assistant.errors import ConfigError

from .config import TrainerConfig
from .stages import DEPENDS, StageFn


@dataclass
class Context:
    cfg: TrainerConfig
    out: Path
    extra_key: dict[str, str] = field(default_factory=dict)  # e.g. input-file fingerprints for "data"

    def dir(self, stage: str) -> Path:
        return self.out / stage

    def record(self, stage: str) -> dict[str, Any]:
        path = self.dir(stage) / "stage.json"
        if not path.exists():
            raise ConfigError(f"Stage '{stage}' has not finished in {self.out}; run it first (or run 'all').")
        return json.loads(path.read_text())

    def key(self, stage: str) -> str:
        sections, upstream = DEPENDS[stage]
        payload = {
            "sections": self.cfg.section_hash(*sections, "run"),
            "upstream": {u: self.record(u)["key"] for u in upstream},
            "extra": self.extra_key.get(stage, ""),
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def data_hash(self) -> str | None:
        path = self.dir("data") / "stage.json"
        return json.loads(path.read_text()).get("data_hash") if path.exists() else None


def run_stage(
    ctx: Context, stage: str, fn: StageFn, *, force: bool = False, log: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Run ``fn`` unless a finished run with the same key exists; return the stage record."""
    log = log or (lambda msg: print(msg, file=sys.stderr))
    key = ctx.key(stage)
    sdir = ctx.dir(stage)
    record_path = sdir / "stage.json"
    if not force and record_path.exists():
        record = json.loads(record_path.read_text())
        if record.get("key") == key:
            log(f"[trainer] {stage}: already done ({record_path}), skipped")
            return record
    if sdir.exists():
        shutil.rmtree(sdir)
    sdir.mkdir(parents=True)
    log(f"[trainer] {stage}: running")
    t0 = time.perf_counter()
    metrics = fn(ctx)
    seconds = time.perf_counter() - t0
    record = {
        "stage": stage,
        "key": key,
        "finished_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "seconds": round(seconds, 2),
        "data_hash": metrics.pop("data_hash", None) or ctx.data_hash(),
        "metrics": metrics,
        "config": ctx.cfg.model_dump(mode="json"),
    }
    (sdir / "config.resolved.toml").write_text(ctx.cfg.to_toml())
    atomic.write_json(record_path, record)
    log(f"[trainer] {stage}: done in {seconds:.1f} s")
    return record
