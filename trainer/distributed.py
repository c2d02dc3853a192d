"""Several processes, one training run: ``accelerate launch`` (or ``torchrun``) over the trainer.

The paper's experts are independent LoRA runs on disjoint clusters (eq. 13), so the multi-GPU split is by
adapter, not by batch: with N processes, adapter job ``i`` (the K experts, then SFT-on-all) is trained by
rank ``i mod N`` on ``cuda:LOCAL_RANK``. Every adapter is seeded by its own job, so its weights do not
depend on which rank trained it (bit-identical to a single-process run on CPU; the same up to kernel
non-determinism on GPUs).

Rank 0 runs every stage as usual; in ``sft`` it trains its own share and collects the others'. The other
ranks wait for rank 0's ``cluster`` record, train their share into ``OUT/sft_parts/<sft key>/`` and exit;
the stages after ``sft`` (one hypernetwork, the evaluation) run on rank 0 alone. Coordination is through
files written atomically, not collectives, so a long stage on rank 0 never trips a communication timeout;
a rank that fails writes a ``.failed`` marker with its one-sentence error, which the others report.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bdc_assistant import atomic
from bdc_assistant.errors import ConfigError, ModelError

POLL_S = 0.5
ABORT_MARKER = ".rank0.failed"
WAIT_ENV = "BDC_TRAINER_WAIT_S"  # how long a rank waits for another (default 12 h: SFT of a big base is slow)


def wait_timeout_s() -> float:
    try:
        return float(os.environ.get(WAIT_ENV, "43200"))
    except ValueError as exc:
        raise ConfigError(f"{WAIT_ENV} must be a number of seconds ({exc}).") from exc


@dataclass(frozen=True)
class Launch:
    """This process's place in a multi-process launch (rank 0 of 1 when launched plainly)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def owns(self, job_index: int) -> bool:
        return job_index % self.world == self.rank


def launch_from_env(env: dict[str, str] | None = None) -> Launch:
    """Read RANK / WORLD_SIZE / LOCAL_RANK as set by ``accelerate launch`` and ``torchrun``."""
    env = dict(os.environ) if env is None else env
    try:
        world = int(env.get("WORLD_SIZE", "1"))
        rank = int(env.get("RANK", "0"))
        local = int(env.get("LOCAL_RANK", str(rank)))
    except ValueError as exc:
        raise ConfigError(f"The launcher's RANK / WORLD_SIZE / LOCAL_RANK are not integers ({exc}).") from exc
    if world < 1 or not 0 <= rank < world:
        raise ConfigError(f"The launcher set RANK={rank} with WORLD_SIZE={world}.")
    return Launch(rank, world, local)


def rank_device(device: str, launch: Launch) -> str:
    """``cuda`` becomes this rank's own GPU; anything else is left alone."""
    if launch.distributed and device == "cuda":
        return f"cuda:{launch.local_rank}"
    return device


def parts_dir(out: Path, sft_key: str) -> Path:
    return out / "sft_parts" / sft_key[:16]


def publish_part(parts: Path, name: str, trained_dir: Path, metrics: dict[str, Any]) -> None:
    """Move a finished adapter into ``parts/name`` in one rename (a reader never sees half of it)."""
    atomic.write_json(trained_dir / "metrics.json", metrics)
    final = parts / name
    if final.exists():
        shutil.rmtree(final)
    trained_dir.replace(final)


def mark_failed(parts: Path, launch: Launch, message: str) -> None:
    atomic.write_json(parts / f"rank{launch.rank}.failed", {"rank": launch.rank, "error": message})


def _raise_if_failed(parts: Path) -> None:
    for marker in sorted(parts.glob("rank*.failed")) if parts.is_dir() else []:
        info = json.loads(marker.read_text())
        raise ModelError(f"Rank {info['rank']} failed while training its adapters: {info['error']}")


def collect_part(
    parts: Path, name: str, dest: Path, *, timeout_s: float, sleep: Callable[[float], None] = time.sleep
) -> dict[str, Any]:
    """Wait for another rank's adapter ``name``, move it to ``dest`` and return its metrics."""
    deadline = time.monotonic() + timeout_s
    src = parts / name
    while not (src / "metrics.json").exists():
        _raise_if_failed(parts)
        if time.monotonic() > deadline:
            raise ModelError(
                f"No rank delivered the adapter '{name}' within {timeout_s:.0f} s; did every process start?"
            )
        sleep(POLL_S)
    metrics = json.loads((src / "metrics.json").read_text())
    (src / "metrics.json").unlink()
    if dest.exists():
        shutil.rmtree(dest)
    src.replace(dest)
    return dict(metrics)


def wait_until(
    ready: Callable[[], bool],
    *,
    what: str,
    abort_marker: Path,
    started: float,
    timeout_s: float,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Poll ``ready`` until it holds; stop with one sentence if rank 0 failed meanwhile or time ran out."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        if abort_marker.exists() and abort_marker.stat().st_mtime >= started:
            raise ModelError(f"Rank 0 stopped before {what}: {abort_marker.read_text().strip()}")
        if time.monotonic() > deadline:
            raise ModelError(f"Gave up waiting {timeout_s:.0f} s for rank 0 to finish {what}.")
        sleep(POLL_S)
