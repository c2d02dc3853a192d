"""Shared test setup.

Every test runs with ``BDC_HOME`` in a fresh temp dir (no user config, DB or keys leak in or out), while
``BDC_MODELS_DIR`` keeps pointing at the real models cache so the 250 MB embedded GGUF is assembled once
per machine, not per test. No test reaches a hub.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Resolve the real models dir before any test relocates BDC_HOME.
if "BDC_MODELS_DIR" not in os.environ:
    from bdc_assistant.paths import app_paths as _app_paths

    os.environ["BDC_MODELS_DIR"] = str(_app_paths().models_dir)
REAL_MODELS_DIR = Path(os.environ["BDC_MODELS_DIR"])


@pytest.fixture(autouse=True)
def bdc_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path_factory.mktemp("bdc_home")
    monkeypatch.setenv("BDC_HOME", str(home))
    monkeypatch.setenv("BDC_MODELS_DIR", str(REAL_MODELS_DIR))
    for var in list(os.environ):
        if var.startswith("BDC_") and var not in ("BDC_HOME", "BDC_MODELS_DIR", "BDC_SHARED_DATA"):
            monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture(scope="session")
def embedded_base_gguf() -> Path:
    """The embedded base solver GGUF (Qwen2.5-Coder-0.5B-Instruct), assembled once per machine."""
    from bdc_assistant.models import embedded

    os.environ["BDC_MODELS_DIR"] = str(REAL_MODELS_DIR)
    return embedded.install_base()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    try:
        import torch

        has_cuda = bool(torch.cuda.is_available())
    except Exception:
        has_cuda = False
    if has_cuda:
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU (none here; CI is CPU-only)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)
