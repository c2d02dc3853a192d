"""Pick and open the generation backend: ``auto`` = CUDA → torch, otherwise llama.cpp.

Why the care about imports: ``bdc --help``, ``bdc doctor`` and the TUI's first frame must not pay for
importing torch (1–3 s); whether CUDA is usable comes from :mod:`.gpu`, which answers from files on disk
whenever it can.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import BackendUnavailable, ConfigError
from . import gpu

if TYPE_CHECKING:
    from ..config import Settings
    from .base import Generator

BACKENDS = ("llamacpp", "torch")
_DEPS: dict[str, tuple[str, ...]] = {"llamacpp": ("llama_cpp",), "torch": ("torch", "transformers")}
_INSTALL_HINT = "run `make install`"


def missing_dependency(backend: str) -> str | None:
    """The first Python package ``backend`` needs that is not importable, else ``None``."""
    for module in _DEPS[backend]:
        if not gpu.has_module(module):
            return module
    return None


def _unavailable(backend: str, module: str) -> BackendUnavailable:
    package = {"llama_cpp": "llama-cpp-python"}.get(module, module)
    return BackendUnavailable(
        f"The {backend} backend needs the Python package {package}, which is not installed; {_INSTALL_HINT}."
    )


def resolve_backend_name(settings: Settings, requested: str | None = None) -> str:
    """``"llamacpp"`` or ``"torch"`` for this machine and these settings, or a one-sentence refusal."""
    name = (requested or settings.backend.name or "auto").strip().lower()
    if name not in (*BACKENDS, "auto"):
        raise ConfigError(f"Unknown backend '{name}'; choose one of: auto, {', '.join(BACKENDS)}.")
    device = settings.backend.device
    if device == "cuda" and not gpu.cuda_available():
        raise BackendUnavailable(
            'CUDA was requested (backend.device = "cuda") but no CUDA GPU is available here.'
        )
    if name == "auto":
        if device == "cuda" or (device == "auto" and gpu.cuda_available()):
            name = "torch"
        else:
            name = "llamacpp"
            # Without llama.cpp, a working torch install still answers (slowly) rather than not at all.
            if missing_dependency("llamacpp") and missing_dependency("torch") is None:
                name = "torch"
    missing = missing_dependency(name)
    if missing:
        raise _unavailable(name, missing)
    return name


def open_generator(
    settings: Settings,
    name: str | None = None,
    *,
    gguf: Path | None = None,
    hf_dir: Path | None = None,
) -> Generator:
    """Load the base model on the chosen backend (``gguf`` / ``hf_dir`` override the configured model)."""
    backend = resolve_backend_name(settings, name)
    cfg = settings.backend
    if backend == "llamacpp":
        from ..models import resolve
        from .llamacpp_backend import LlamaCppGenerator

        path = resolve.check_gguf(Path(gguf), "base") if gguf is not None else resolve.base_gguf(settings)
        return LlamaCppGenerator(path, n_ctx=cfg.n_ctx, threads=cfg.threads, seed=cfg.seed)

    from .torch_backend import TorchGenerator

    if hf_dir is None:
        if settings.models.base_hf_dir and gguf is None:
            hf_dir = Path(settings.models.base_hf_dir).expanduser()
        else:
            from ..models import hf_cache, resolve

            source = (
                resolve.check_gguf(Path(gguf), "base") if gguf is not None else resolve.base_gguf(settings)
            )
            hf_dir = hf_cache.hf_dir_for_gguf(source)
    dtype = None if cfg.torch_dtype == "auto" else cfg.torch_dtype
    return TorchGenerator(hf_dir, device=cfg.device, dtype=dtype, seed=cfg.seed)
