"""bench/serve.py runs both sides on the real embedded model and writes its JSON (a short run)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ..bench_scripts import bench_script
from .conftest import REPO, child_env

pytestmark = pytest.mark.slow


def test_bench_serve_json(gemma_gguf: Path, gemma_bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "serve.json"
    proc = subprocess.run(
        [
            sys.executable,
            "bench/serve.py",
            "--json",
            "--repeats",
            "1",
            "--limit",
            "1",
            "--tokens",
            "8",
            "--thought-tokens",
            "8",
            "--gguf",
            str(gemma_gguf),
            "--bundle",
            str(gemma_bundle),
            "--out",
            str(out),
        ],
        cwd=REPO,
        env=child_env(tmp_path / "home", gemma_gguf),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = json.loads(proc.stdout.strip().splitlines()[-1])
    saved = json.loads(out.read_text())
    assert line["bench"] == saved["bench"] == "serve" and "runs" in saved and "runs" not in line
    for kind in ("completions", "chat"):
        assert line[f"{kind}_same_text"] is True  # both sides did the same work
        for side in ("inproc", "http"):
            assert line[f"{kind}_{side}_ttft_s"] > 0 and line[f"{kind}_{side}_tok_s"] > 0
        assert f"paired_overhead_{kind}_ttft" in line and f"paired_overhead_{kind}_tok_s" in line
    assert line["completions_inproc_setup_ms"] > 0 and line["completions_http_setup_ms"] > 0
    assert line["load_avg_1m"]["max"] >= 0 and line["machine"]["cores"] >= 1


def _pair(inproc_ttft: float, http_ttft: float, inproc_rate: float, http_rate: float) -> dict[str, Any]:
    return {
        "inproc": {"ttft": inproc_ttft, "tok_s": inproc_rate},
        "http": {"ttft": http_ttft, "tok_s": http_rate},
    }


def test_serve_pooled_takes_the_median_of_every_pair_of_every_run(tmp_path: Path) -> None:
    serve_pooled = bench_script("serve_pooled")
    machine = {"cpu": "X"}
    # run 1: HTTP TTFT +10 %, +20 %; run 2: +0 %, +30 %, +40 % -> pooled median +20 %
    one = {"machine": machine, "runs": {"completions": [_pair(1, 1.1, 10, 10), _pair(1, 1.2, 10, 5)]}}
    two = {
        "machine": machine,
        "runs": {"completions": [_pair(1, 1, 10, 10), _pair(1, 1.3, 10, 10), _pair(1, 1.4, 10, 10)]},
    }
    got = serve_pooled.pooled([one, two])
    ttft = got["completions_ttft_overhead"]
    assert ttft["pairs"] == 5 and ttft["median"] == pytest.approx(0.2)
    assert ttft["ci95"][0] <= 0.2 <= ttft["ci95"][1]
    assert got["completions_tok_s_overhead"]["median"] == 0.0  # one pair of five is 2x slower
    assert "chat_ttft_overhead" not in got
    paths = []
    for i, r in enumerate((one, {"machine": {"cpu": "Y"}, "runs": {}})):
        paths.append(tmp_path / f"r{i}.json")
        paths[-1].write_text(json.dumps(r))
    assert serve_pooled.main([str(p) for p in paths]) == 2  # two machines are never pooled
    (tmp_path / "cut.json").write_text('{"runs": ')  # a run killed while writing its JSON
    assert serve_pooled.main([str(paths[0]), str(tmp_path / "cut.json")]) == 2
    assert serve_pooled.main([str(tmp_path / "missing.json")]) == 2
