"""The CLI edge: light `--help`, one-sentence errors, paths/doctor output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bdc_assistant.models import embedded

HEAVY = (
    "torch",
    "transformers",
    "llama_cpp",
    "sentence_transformers",
    "peft",
    "textual",
    "openai",
    "anthropic",
)


def run_bdc(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bdc_assistant", *args],
        capture_output=True, text=True, env={**os.environ, **(env or {})}, input=stdin, timeout=300,
    )  # fmt: skip


def test_help_imports_nothing_heavy() -> None:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "bdc_assistant", "--help"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    imported = {line.split("|")[-1].strip().split(".")[0] for line in proc.stderr.splitlines() if "|" in line}
    assert "bdc_assistant" in imported  # the importtime output is what we think it is
    leaked = sorted(set(HEAVY) & imported)
    assert not leaked, f"bdc --help imported {leaked}"
    assert "ask" in proc.stdout


def test_every_subcommand_help_is_light() -> None:
    from bdc_assistant.cli import COMMANDS

    code = (
        "import sys, bdc_assistant.cli as c; p = c.build_parser(); "
        f"bad = [m for m in {HEAVY!r} if m in sys.modules]; print(','.join(bad))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", f"building the parser imported {proc.stdout.strip()}"
    assert len(COMMANDS) >= 10


def test_paths_json_follows_bdc_home(bdc_home: Path) -> None:
    proc = run_bdc("paths", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["data_dir"].startswith(str(bdc_home))


def test_the_log_file_is_in_the_state_dir_and_verbose_fills_it(bdc_home: Path) -> None:
    proc = run_bdc("paths", "--json")
    log = Path(json.loads(proc.stdout)["log_file"])
    assert log == bdc_home / "state" / "logs" / "bdc.log"
    assert "INFO bdc_assistant.cli" in log.read_text() and "DEBUG" not in log.read_text()
    proc = run_bdc("--verbose", "config")
    assert proc.returncode == 0, proc.stderr
    assert "bdc INFO bdc_assistant.cli: bdc" in proc.stderr  # --verbose echoes the log on stderr
    assert log.read_text().count("bdc_assistant.cli") == 2


def test_bad_config_key_is_one_sentence_and_nonzero(bdc_home: Path) -> None:
    cfg = bdc_home / "config" / "config.toml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text("[solver]\nmax_tokenz = 3\n")
    proc = run_bdc("config")
    assert proc.returncode != 0
    assert proc.stderr.startswith("bdc: Unknown config key 'solver.max_tokenz'")
    assert proc.stderr.count("\n") == 1  # one sentence, no traceback
    assert str(cfg) in proc.stderr


def test_missing_base_gguf_is_one_sentence(tmp_path: Path) -> None:
    proc = run_bdc(
        "ask", "--backend", "llamacpp", "x", env={"BDC_MODELS__BASE_GGUF": str(tmp_path / "nope.gguf")}
    )
    assert proc.returncode != 0
    assert "does not exist" in proc.stderr and "Traceback" not in proc.stderr


def test_corrupt_base_gguf_is_one_sentence(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"NOTAGGUF" * 100)
    proc = run_bdc("ask", "--backend", "llamacpp", "x", env={"BDC_MODELS__BASE_GGUF": str(bad)})
    assert proc.returncode != 0
    assert "not a GGUF file" in proc.stderr and "Traceback" not in proc.stderr


def test_truncated_base_gguf_is_one_sentence(tmp_path: Path, embedded_base_gguf: Path) -> None:
    cut = tmp_path / "cut.gguf"
    with embedded_base_gguf.open("rb") as fh:
        cut.write_bytes(fh.read(4096))
    proc = run_bdc("ask", "--backend", "llamacpp", "x", env={"BDC_MODELS__BASE_GGUF": str(cut)})
    assert proc.returncode != 0
    assert proc.stderr.startswith("bdc: ") and "Traceback" not in proc.stderr, proc.stderr


def test_empty_problem_is_rejected() -> None:
    proc = run_bdc("ask", "-", stdin="   \n")
    assert proc.returncode != 0
    assert "empty" in proc.stderr


@pytest.mark.slow
def test_doctor_json_reports_models_and_backend(embedded_base_gguf: Path) -> None:
    proc = run_bdc("doctor", "--json")
    data = json.loads(proc.stdout)
    assert data["models"]["base_gguf"] == str(embedded_base_gguf)
    assert data["models"]["base_gguf_status"] == "ok"
    assert data["models"]["small_gguf"].endswith(".gguf")
    assert data["gpu"]["cuda"] in (True, False)
    assert data["backend"]["chosen"] in ("llamacpp", "torch")
    assert data["packages"]["llama-cpp-python"]
    # the base by name with its pinned sha256 and license; the strict sandbox level and why
    assert data["base"]["sha256_verified"] and data["base"]["license"] == "Apache-2.0"
    assert data["sandbox"]["level"] in ("userns", "landlock") and data["sandbox"]["reason"]
    shipped = data["shipped_bundle"]
    # one bundle ships per base; the app uses it by default unless its validation put it below the base
    assert shipped["default"] == (data["bundle"]["path"] == shipped["path"] is not None)
    assert shipped["applies"] and shipped["base"] == "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"


@pytest.mark.slow
def test_ask_json_on_the_embedded_model_offline(embedded_base_gguf: Path) -> None:
    """Issue acceptance: `bdc ask --json --backend llamacpp` answers from the embedded model, offline."""
    proc = run_bdc(
        "ask", "--json", "--backend", "llamacpp", "--bundle", "none",
        "Write a Python function is_palindrome(s) that returns True when s reads the same forwards and backwards.",
        env={"HF_HUB_OFFLINE": "1", "BDC_BACKEND__THREADS": "2", "NO_PROXY": "*", "HTTPS_PROXY": "http://0.0.0.0:9"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in ("thought", "code", "backend", "model", "tokens", "seconds"):
        assert key in data
    assert data["backend"] == "llamacpp" and data["model"] == embedded.BASE_NAME
    assert "def is_palindrome" in data["code"]
    compile(data["code"], "answer.py", "exec")
    assert data["tokens"] > 0 and data["bundle"] is None and "plain base model" in data["bundle_note"]
