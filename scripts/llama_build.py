"""Install llama-cpp-python built for the CPU it runs on, reusing a wheel only when the flags match.

Why a script and not a pip line: pip caches a wheel it built from source under the sdist's name only, so a
wheel built with `-DGGML_AVX512=ON` on one machine would be reused on a CPU without AVX-512 and die with
SIGILL on the first model load. Here the CMake flags are derived from the CPU at install time and the built
wheel is kept in a folder keyed by (version, flags, patch); the flags of the installed build are written next
to the venv so `make install` can tell when a rebuild is due.

The vendored llama.cpp is patched before the build (scripts/llama_patch.py: DisenLoRA adapters run as one
fused graph node per adapted matrix). BDC_LLAMA_PATCH=0 builds the stock source instead.

    python scripts/llama_build.py flags        # the CMake flags for this CPU, one line
    python scripts/llama_build.py install      # build or reuse the wheel, install it into this interpreter
    python scripts/llama_build.py check        # exit 0 when the installed build has this CPU's flags
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

# The package's stdlib-only machine module (its __init__ imports nothing), usable before anything is installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bdc_assistant.machine import cpu_name

sys.path.insert(0, str(Path(__file__).resolve().parent))
import llama_patch

VERSION = os.environ.get("LLAMA_VERSION", "0.3.36")
# x86 feature → ggml CMake option. AVX-512 is enabled only when every sub-feature ggml's AVX512 build uses is
# present. The AMX path stays off: a build with it crashed (SIGILL) on a machine that reported AMX.
_X86_SIMPLE = {
    "avx": "GGML_AVX",
    "avx2": "GGML_AVX2",
    "fma": "GGML_FMA",
    "f16c": "GGML_F16C",
    "bmi2": "GGML_BMI2",
}
_AVX512_BASE = ("avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw")
_AVX512_EXTRA = {
    "avx512vbmi": "GGML_AVX512_VBMI",
    "avx512_vnni": "GGML_AVX512_VNNI",
    "avx512_bf16": "GGML_AVX512_BF16",
}


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def cmake_args() -> str:
    """CMake flags for this CPU: explicit ISA options on x86, llama.cpp's own defaults elsewhere."""
    override = os.environ.get("BDC_LLAMA_CMAKE_ARGS")
    if override:
        return override
    machine = platform.machine().lower()
    if machine not in ("x86_64", "amd64", "i686", "i386"):
        # ARM / Apple silicon: llama.cpp's defaults target the building CPU and have no AMX trap.
        return "-DGGML_NATIVE=ON"
    flags = cpu_flags()
    args = ["-DGGML_NATIVE=OFF"]
    for feature, option in _X86_SIMPLE.items():
        args.append(f"-D{option}={'ON' if feature in flags else 'OFF'}")
    avx512 = all(f in flags for f in _AVX512_BASE)
    args.append(f"-DGGML_AVX512={'ON' if avx512 else 'OFF'}")
    for feature, option in _AVX512_EXTRA.items():
        args.append(f"-D{option}={'ON' if avx512 and feature in flags else 'OFF'}")
    args += ["-DGGML_AVX_VNNI=OFF", "-DGGML_AMX_TILE=OFF", "-DGGML_AMX_INT8=OFF", "-DGGML_AMX_BF16=OFF"]
    return " ".join(args)


def patched() -> bool:
    return os.environ.get("BDC_LLAMA_PATCH", "1") != "0"


def build_id(args: str) -> str:
    """What a build is made of: its CMake flags and, when patched, the patch's digest."""
    return f"{args} bdc-patch={llama_patch.digest()}" if patched() else args


def _key(args: str) -> str:
    ident = build_id(args)
    return hashlib.sha256(
        f"{VERSION}|{sys.version_info[:2]}|{platform.machine()}|{ident}".encode()
    ).hexdigest()[:16]


def wheel_dir(args: str) -> Path:
    root = Path(
        os.environ.get("BDC_WHEEL_CACHE")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bdc-assistant" / "wheels"
    )
    return root / f"llama_cpp_python-{VERSION}-{_key(args)}"


def _marker() -> Path:
    return Path(sys.prefix) / "bdc-llama-build.txt"


def installed_matches(args: str) -> bool:
    try:
        import importlib.metadata as md

        if md.version("llama_cpp_python") != VERSION:
            return False
    except Exception:
        return False
    return _marker().is_file() and _marker().read_text().strip() == build_id(args)


def install(args: str) -> int:
    target = wheel_dir(args)
    wheels = sorted(target.glob("llama_cpp_python-*.whl")) if target.is_dir() else []
    if wheels:
        print(f"llama-cpp-python {VERSION}: reusing the wheel built for these flags ({target.name})")
    else:
        print(
            f"building llama-cpp-python {VERSION} for this CPU ({cpu_name()}) with {args}\n"
            "  this compiles llama.cpp from source: 6–15 minutes on 2 cores, once per machine and flag set",
            flush=True,
        )
        tmp = target.with_name(target.name + ".part")
        tmp.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "CMAKE_ARGS": args, "FORCE_CMAKE": "1"}
        rc = _build_wheel(tmp, env)
        if rc != 0:
            print(f"The llama-cpp-python {VERSION} build failed (exit {rc}) with {args}.", file=sys.stderr)
            return 1
        tmp.rename(target) if not target.exists() else None
        wheels = sorted(target.glob("llama_cpp_python-*.whl"))
    rc = subprocess.call(
        [sys.executable, "-m", "pip", "install", "-q", "--force-reinstall", "--no-deps", str(wheels[-1])]
    )
    if rc != 0:
        return rc
    # The server extra's dependencies (starlette, uvicorn, sse-starlette…) and the core ones, from the index.
    rc = subprocess.call(
        [sys.executable, "-m", "pip", "install", "-q", f"llama-cpp-python[server]=={VERSION}"]
    )
    if rc == 0:
        _marker().write_text(build_id(args) + "\n")
    return rc


def _build_wheel(out: Path, env: dict[str, str]) -> int:
    """pip-build the wheel into ``out``: from the index's sdist, or from a patched unpacked copy of it."""
    pip = [sys.executable, "-m", "pip"]
    if not patched():
        return subprocess.call(
            [
                *pip,
                "wheel",
                "-q",
                "--no-deps",
                "--no-cache-dir",
                "--no-binary",
                "llama-cpp-python",
                "-w",
                str(out),
                f"llama-cpp-python=={VERSION}",
            ],
            env=env,
        )
    with tempfile.TemporaryDirectory(prefix="bdc-llama-src-") as tmp:
        rc = subprocess.call(
            [
                *pip,
                "download",
                "-q",
                "--no-deps",
                "--no-binary",
                ":all:",
                "-d",
                tmp,
                f"llama-cpp-python=={VERSION}",
            ],
            env=env,
        )
        sdists = sorted(Path(tmp).glob("llama_cpp_python-*.tar.gz"))
        if rc != 0 or not sdists:
            print(f"Could not download the llama-cpp-python {VERSION} source (exit {rc}).", file=sys.stderr)
            return rc or 1
        with tarfile.open(sdists[0]) as tar:
            try:
                tar.extractall(tmp, filter="data")
            except TypeError:  # Python without extraction filters (before 3.11.4): the sdist is PyPI's
                tar.extractall(tmp)
        source = Path(tmp) / sdists[0].name.removesuffix(".tar.gz")
        llama_patch.apply(source)
        print(f"  patched the vendored llama.cpp (bdc patch {llama_patch.digest()})", flush=True)
        return subprocess.call(
            [*pip, "wheel", "-q", "--no-deps", "--no-cache-dir", "-w", str(out), str(source)], env=env
        )


def main(argv: list[str]) -> int:
    cmd = argv[1] if len(argv) > 1 else "flags"
    args = cmake_args()
    if cmd == "flags":
        print(args)
        return 0
    if cmd == "check":
        return 0 if installed_matches(args) else 1
    if cmd == "install":
        if installed_matches(args):
            print(f"llama-cpp-python {VERSION} already built for this CPU's flags")
            return 0
        return install(args)
    print(f"unknown command {cmd!r}: use flags, check or install", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
