"""Multi-process training (``accelerate launch`` / ``torchrun``): adapters split across ranks by job,
handed over through atomic renames, failures reported in one sentence instead of a hang."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bdc_assistant.errors import ConfigError, ModelError
from trainer import distributed as dist

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "trainer" / "configs" / "smoke.toml"


def test_launch_from_env() -> None:
    assert dist.launch_from_env({}) == dist.Launch(0, 1, 0)
    launch = dist.launch_from_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert (launch.rank, launch.world, launch.local_rank, launch.is_main) == (3, 4, 1, False)
    assert [i for i in range(9) if launch.owns(i)] == [3, 7]
    assert dist.rank_device("cuda", launch) == "cuda:1"
    assert dist.rank_device("cpu", launch) == "cpu"
    assert dist.rank_device("cuda", dist.Launch()) == "cuda"
    with pytest.raises(ConfigError, match="RANK=4 with WORLD_SIZE=2"):
        dist.launch_from_env({"RANK": "4", "WORLD_SIZE": "2"})
    with pytest.raises(ConfigError, match="not integers"):
        dist.launch_from_env({"WORLD_SIZE": "two"})


def test_parts_are_handed_over_whole(tmp_path: Path) -> None:
    parts = tmp_path / "parts"
    trained = tmp_path / ".expert_1.rank1"
    trained.mkdir(parents=True)
    (trained / "adapter_model.safetensors").write_bytes(b"weights")
    naps: list[float] = []
    with pytest.raises(ModelError, match="No rank delivered the adapter 'expert_1' within 0 s"):
        dist.collect_part(parts, "expert_1", tmp_path / "dest", timeout_s=0.0, sleep=naps.append)
    parts.mkdir()
    dist.publish_part(parts, "expert_1", trained, {"steps": 3, "rank": 1})
    assert not trained.exists()
    m = dist.collect_part(parts, "expert_1", tmp_path / "dest", timeout_s=1.0)
    assert m == {"steps": 3, "rank": 1}
    assert (tmp_path / "dest" / "adapter_model.safetensors").read_bytes() == b"weights"
    assert not (tmp_path / "dest" / "metrics.json").exists() and not (parts / "expert_1").exists()


def test_a_failed_rank_is_reported_not_waited_for(tmp_path: Path) -> None:
    parts = tmp_path / "parts"
    dist.mark_failed(parts, dist.Launch(1, 2, 1), "CUDA out of memory.")
    with pytest.raises(ModelError, match=r"Rank 1 failed while training its adapters: CUDA out of memory\."):
        dist.collect_part(parts, "expert_1", tmp_path / "dest", timeout_s=60.0, sleep=lambda s: None)


def test_waiting_ranks_stop_when_rank0_fails(tmp_path: Path) -> None:
    marker = tmp_path / dist.ABORT_MARKER
    started = time.time() - 1
    marker.write_text("The offline problem sets were not found.\n")
    with pytest.raises(ModelError, match="Rank 0 stopped before clustering: The offline problem sets"):
        dist.wait_until(
            lambda: False,
            what="clustering",
            abort_marker=marker,
            started=started,
            timeout_s=60,
            sleep=lambda s: None,
        )
    # a marker left by an earlier run is not this run's failure
    os.utime(marker, (started - 100, started - 100))
    with pytest.raises(ModelError, match="Gave up waiting 0 s for rank 0 to finish clustering"):
        dist.wait_until(lambda: False, what="clustering", abort_marker=marker, started=started, timeout_s=0)
    dist.wait_until(lambda: True, what="x", abort_marker=marker, started=started, timeout_s=0)


def _run(out: Path, *launcher: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "BDC_NO_PROGRESS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [*launcher, "-m", "trainer", "all", "--config", str(SMOKE), "--out", str(out)]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_two_processes_train_the_same_adapters_as_one(tmp_path: Path) -> None:
    """torchrun (what ``accelerate launch --multi_gpu`` runs) with 2 CPU processes vs a plain run."""
    one = _run(tmp_path / "one", sys.executable)
    assert one.returncode == 0, one.stderr[-3000:]
    two = _run(
        tmp_path / "two",
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
    )
    assert two.returncode == 0, two.stderr[-3000:]
    assert "rank 1 of 2 finished its share" in two.stderr

    m1 = json.loads((tmp_path / "one" / "sft" / "stage.json").read_text())["metrics"]
    m2 = json.loads((tmp_path / "two" / "sft" / "stage.json").read_text())["metrics"]
    assert (m1["processes"], m2["processes"]) == (1, 2)
    assert list(m1["adapters"]) == list(m2["adapters"])
    ranks = [a["rank"] for a in m2["adapters"].values()]
    assert ranks == [i % 2 for i in range(len(ranks))]  # job i went to rank i mod 2
    for name in m1["adapters"]:
        a = (tmp_path / "one" / "sft" / name / "adapter_model.safetensors").read_bytes()
        b = (tmp_path / "two" / "sft" / name / "adapter_model.safetensors").read_bytes()
        assert a == b, f"{name} differs between 1 and 2 processes"
        assert m1["adapters"][name]["loss_last"] == m2["adapters"][name]["loss_last"]
    assert not (tmp_path / "two" / "sft_parts").exists()
    assert (tmp_path / "two" / "export" / "bundle" / "manifest.json").exists()
