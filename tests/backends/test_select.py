"""Backend selection: auto rules, refusals in one sentence, cheap CUDA probe, opening generators."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bdc_assistant.backends import gpu, select
from bdc_assistant.config import load_settings
from bdc_assistant.errors import BackendUnavailable, ConfigError, ModelError
from bdc_assistant.models.tiny import TinyModel


def _settings(**backend: Any) -> Any:
    return load_settings(backend=backend) if backend else load_settings()


@pytest.fixture
def no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gpu, "cuda_available", lambda: False)


@pytest.fixture
def with_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gpu, "cuda_available", lambda: True)


def test_auto_without_cuda_is_llamacpp(no_cuda: None) -> None:
    assert select.resolve_backend_name(_settings()) == "llamacpp"
    assert select.resolve_backend_name(_settings(), "auto") == "llamacpp"
    assert select.resolve_backend_name(_settings(device="cpu")) == "llamacpp"


def test_auto_with_cuda_is_torch(with_cuda: None) -> None:
    assert select.resolve_backend_name(_settings()) == "torch"
    assert select.resolve_backend_name(_settings(device="cuda")) == "torch"
    assert select.resolve_backend_name(_settings(device="cpu")) == "llamacpp"  # the user said CPU


def test_explicit_names(no_cuda: None) -> None:
    assert select.resolve_backend_name(_settings(name="torch")) == "torch"
    assert select.resolve_backend_name(_settings(name="torch"), "llamacpp") == "llamacpp"  # CLI flag wins


def test_unknown_backend_name(no_cuda: None) -> None:
    with pytest.raises(ConfigError, match="Unknown backend 'vllm'"):
        select.resolve_backend_name(_settings(), "vllm")


def test_cuda_requested_but_absent(no_cuda: None) -> None:
    for name in (None, "torch", "llamacpp"):
        with pytest.raises(BackendUnavailable) as info:
            select.resolve_backend_name(_settings(device="cuda"), name)
        assert (
            str(info.value)
            == 'CUDA was requested (backend.device = "cuda") but no CUDA GPU is available here.'
        )


def test_missing_llama_cpp(no_cuda: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    with pytest.raises(BackendUnavailable, match="needs the Python package llama-cpp-python"):
        select.resolve_backend_name(_settings(), "llamacpp")
    # auto falls back to torch on CPU rather than refusing
    assert select.resolve_backend_name(_settings()) == "torch"
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(BackendUnavailable, match="llama-cpp-python"):
        select.resolve_backend_name(_settings())


def test_missing_transformers(no_cuda: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(BackendUnavailable, match="needs the Python package transformers"):
        select.resolve_backend_name(_settings(), "torch")


def test_cuda_probe_does_not_import_torch_on_a_cpu_build() -> None:
    code = (
        "import sys, time\n"
        "t = time.perf_counter()\n"
        "from bdc_assistant.backends.gpu import cuda_available\n"
        "print(cuda_available(), 'torch' in sys.modules, round(time.perf_counter() - t, 3))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[2],
    ).stdout.split()
    print(out)
    assert out[:2] == ["False", "False"]
    assert float(out[2]) < 1.0


def test_torch_cpu_build_detection() -> None:
    import torch

    expected = torch.version.cuda is None
    assert gpu._torch_is_cpu_build() is expected


def test_open_generator_llamacpp(no_cuda: None, tiny_models: dict[str, TinyModel]) -> None:
    gen = select.open_generator(_settings(threads=1, n_ctx=256), gguf=tiny_models["llama"].gguf_path)
    try:
        assert gen.name == "llamacpp"
        assert gen.model_id == "tiny-llama.gguf"
        assert gen.n_ctx == 256  # type: ignore[attr-defined]
    finally:
        gen.close()


def test_open_generator_torch_with_hf_dir(no_cuda: None, tiny_models: dict[str, TinyModel]) -> None:
    gen = select.open_generator(_settings(), "torch", hf_dir=tiny_models["gemma3"].hf_dir)
    try:
        assert gen.name == "torch"
        assert gen.device == "cpu"  # type: ignore[attr-defined]
    finally:
        gen.close()


def test_open_generator_missing_gguf(no_cuda: None, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        select.open_generator(_settings(), gguf=tmp_path / "missing.gguf")
    settings = load_settings(models={"base_gguf": str(tmp_path / "configured.gguf")})
    with pytest.raises(ModelError, match=r"configured\.gguf does not exist"):
        select.open_generator(settings)
