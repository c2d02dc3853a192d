"""Tiny random models for the backend tests, built once per session (every arch, HF dir + GGUF)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bdc_assistant.models.tiny import TinyModel, build_tiny

ARCHS = ("llama", "gemma3", "qwen2")


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TinyModel]:
    root = tmp_path_factory.mktemp("tiny_models")
    return {arch: build_tiny(arch, root / arch, seed=0) for arch in ARCHS}


@pytest.fixture(scope="session")
def llama_gens(tiny_models: dict[str, TinyModel]) -> Iterator[dict[str, Any]]:
    from bdc_assistant.backends.llamacpp_backend import LlamaCppGenerator

    gens = {arch: LlamaCppGenerator(m.gguf_path, n_ctx=256, threads=1) for arch, m in tiny_models.items()}
    yield gens
    for g in gens.values():
        g.close()


@pytest.fixture(scope="session")
def torch_gens(tiny_models: dict[str, TinyModel]) -> Iterator[dict[str, Any]]:
    from bdc_assistant.backends.torch_backend import TorchGenerator

    gens = {arch: TorchGenerator(m.hf_dir, device="cpu") for arch, m in tiny_models.items()}
    yield gens
    for g in gens.values():
        g.close()


def truncated_copy(src: Path, dst: Path, fraction: float = 0.5) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst
