"""bench/serve.py runs both sides on the real embedded model and writes its JSON (a short run)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

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
    assert line["load_avg_1m"]["max"] >= 0 and line["machine"]["cores"] >= 1
