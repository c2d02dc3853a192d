"""bench/generate.py prints one JSON line with both backends' decode rates (run here on a tiny GGUF)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from bdc_assistant.models.tiny import TinyModel

BENCH = Path(__file__).resolve().parents[2] / "bench" / "generate.py"


def test_bench_generate_json(
    tiny_models: dict[str, TinyModel],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("BDC_MODELS_DIR", str(tmp_path / "models"))  # the torch side builds its HF cache here
    spec = importlib.util.spec_from_file_location("bench_generate", BENCH)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    gguf = tiny_models["gemma3"].gguf_path
    rc = bench.main(["--json", "--gguf", str(gguf), "--tokens", "6", "--threads", "1", "--repeats", "2"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert rc == 0 and len(lines) == 1
    result = json.loads(lines[0])
    assert result["model"] == gguf.name and result["tokens"] == 6 and result["threads"] == 1
    assert result["llamacpp_tok_s"] > 0 and result["torch_tok_s"] > 0
    assert result["ratio"] == pytest.approx(result["llamacpp_tok_s"] / result["torch_tok_s"], rel=0.01)
    assert result["same_prompt_ids"] is True
    assert result["machine"]["cores"] >= 1


def test_bench_generate_reports_bad_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("bench_generate", BENCH)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rc = bench.main(["--json", "--gguf", str(tmp_path / "missing.gguf"), "--backends", "llamacpp"])
    assert rc != 0
    assert capsys.readouterr().err.startswith("bdc: ")
