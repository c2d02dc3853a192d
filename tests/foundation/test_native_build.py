"""The llama.cpp build must run on the CPU it was installed on: load the embedded base model in a child
process and generate; a death by signal (SIGILL from an instruction the CPU lacks) fails, it never skips."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import llama_build  # noqa: E402


@pytest.mark.slow
def test_embedded_model_loads_and_generates_in_a_child_process() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "smoke_llama.py")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode < 0:
        pytest.fail(f"the child died from {signal.Signals(-proc.returncode).name}: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr
    assert "smoke test passed" in proc.stdout


def test_installed_build_matches_this_cpu() -> None:
    flags = llama_build.cmake_args()
    assert llama_build.installed_matches(flags), (
        f"the installed llama-cpp-python was not built with this CPU's flags ({flags}); run `make install`"
    )


def test_avx512_only_where_the_cpu_reports_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BDC_LLAMA_CMAKE_ARGS", raising=False)
    monkeypatch.setattr(llama_build.platform, "machine", lambda: "x86_64")
    avx2_only = {"avx", "avx2", "fma", "f16c", "bmi2", "amx_tile", "amx_int8"}
    monkeypatch.setattr(llama_build, "cpu_flags", lambda: avx2_only)
    args = llama_build.cmake_args()
    assert "-DGGML_AVX2=ON" in args and "-DGGML_AVX512=OFF" in args
    assert "-DGGML_NATIVE=OFF" in args and "-DGGML_AMX_INT8=OFF" in args  # AMX never, even when reported
    full = avx2_only | {"avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw", "avx512_vnni"}
    monkeypatch.setattr(llama_build, "cpu_flags", lambda: full)
    args = llama_build.cmake_args()
    assert "-DGGML_AVX512=ON" in args and "-DGGML_AVX512_VNNI=ON" in args and "-DGGML_AVX512_BF16=OFF" in args
    # different flags → a different wheel folder: a wheel built for another CPU is never reused
    other = llama_build.wheel_dir("-DGGML_AVX512=OFF")
    assert llama_build.wheel_dir(args) != other


def test_no_avx_on_a_cpu_without_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BDC_LLAMA_CMAKE_ARGS", raising=False)
    monkeypatch.setattr(llama_build.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(llama_build, "cpu_flags", lambda: {"sse4_2"})
    args = llama_build.cmake_args()
    assert "-DGGML_AVX=OFF" in args and "-DGGML_AVX2=OFF" in args and "-DGGML_FMA=OFF" in args


def test_the_installed_build_carries_the_fused_lora_patch() -> None:
    """`make install` builds the patched llama.cpp: the app's adapters then run fused (scripts/llama_patches)."""
    from bdc_assistant.disen.llamacpp_adapter import fused_layout_available

    assert fused_layout_available(), (
        "the installed llama.cpp lacks bdc's fused-LoRA patch; run `make install`"
    )


def test_a_changed_patch_or_no_patch_is_another_build(monkeypatch: pytest.MonkeyPatch) -> None:
    flags = "-DGGML_AVX2=ON"
    patched = llama_build.build_id(flags)
    assert flags in patched and llama_build.llama_patch.digest() in patched
    wheels = llama_build.wheel_dir(flags)
    monkeypatch.setattr(llama_build.llama_patch, "digest", lambda: "0" * 12)
    assert llama_build.build_id(flags) != patched and llama_build.wheel_dir(flags) != wheels
    monkeypatch.setenv("BDC_LLAMA_PATCH", "0")
    assert llama_build.build_id(flags) == flags


def test_the_patch_fails_loudly_on_a_llama_cpp_that_moved_on(tmp_path: Path) -> None:
    import llama_patch

    src = tmp_path / "llama_cpp_python-0.0.0" / "vendor" / "llama.cpp" / "src"
    src.mkdir(parents=True)
    for rel in {rel for rel, _, _ in llama_patch.EDITS}:
        (src.parent / rel).write_text("// nothing this patch expects\n")
    with pytest.raises(SystemExit, match="copies of the text to replace"):
        llama_patch.apply(src.parents[2])
    assert not (src / llama_patch.HEADER.name).exists()  # nothing half-applied
