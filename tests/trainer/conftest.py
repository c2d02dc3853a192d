"""Fixtures for the trainer tests: one tiny random Llama (HF dir + GGUF) per session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory):
    from bdc_assistant.models.tiny import build_tiny

    return build_tiny("llama", tmp_path_factory.mktemp("tiny_llama"), seed=0)


@pytest.fixture(scope="session")
def two_experts(tiny_llama, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two random peft-format experts on the tiny model (taken from a random bundle)."""
    from bdc_assistant.disen.random_bundle import make_random_bundle

    out = make_random_bundle(
        tiny_llama.hf_dir,
        tmp_path_factory.mktemp("rb") / "b",
        K=2,
        r=2,
        seed=1,
        scale=0.3,
        embed_dim=8,
        hidden=8,
    )
    return [out / "experts" / "expert_0", out / "experts" / "expert_1"]
