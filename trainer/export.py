"""The ``export`` stage: the DisenLoRA bundle with its evaluation in the manifest (optionally f16 experts and
the llama.cpp adapter template), registered in the app's bundles dir.

Before anything is written, the candidate's input-awareness (:mod:`.routing`, measured by ``evaluate``) is
checked: a hypernetwork whose gates do not vary with the input is a static merge, so exporting it is a loud
warning (recorded in the manifest's metrics) or, with ``export.refuse_input_invariant``, a refusal.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import artifacts as art
from .routing import check_input_aware

if TYPE_CHECKING:
    from .runner import Context


def candidate_routing(ctx: Context, evaluate_metrics: dict[str, Any]) -> dict[str, Any] | None:
    """The DisenLoRA candidate's routing report: the one ``evaluate`` measured, else measured here (an
    evaluation recorded before the report had it)."""
    report = (evaluate_metrics.get("routing") or {}).get("bundles", {}).get("DisenLoRA")
    if report is None:
        from .routing import evaluation_routing

        report = evaluation_routing(ctx, {"DisenLoRA": ctx.dir("hypernet") / "bundle"})["bundles"].get(
            "DisenLoRA"
        )
    return report


def stage_export(ctx: Context) -> dict[str, Any]:
    from bdc_assistant.disen.bundle import load_bundle, save_bundle
    from bdc_assistant.disen.safetensors_io import read_safetensors

    cfg = ctx.cfg
    ref = art.base_ref(ctx)
    src = ctx.dir("hypernet") / "bundle"
    manifest = json.loads((src / "manifest.json").read_text())
    ev = ctx.record("evaluate")["metrics"]
    routing = candidate_routing(ctx, ev)
    warning = check_input_aware(routing, refuse=cfg.export.refuse_input_invariant, what=f"The bundle {src}")
    manifest["metrics"] = {
        "summary": ev.get("summary"),
        "evaluation": ev.get("table"),
        "evaluation_backend": cfg.evaluate.backend,
        "evaluation_datasets": list(cfg.evaluate.datasets),
        "hypernet": ctx.record("hypernet")["metrics"].get("val_loss"),
        "routing": routing,
    }
    prov = manifest.setdefault("provenance", {})
    prov.update(art.provenance(ctx))
    prov["steps"] = art.training_steps(ctx)
    prov["trained_on"] = art.trained_on(ctx)
    prov.pop("created_at", None)
    prov["trainer_config"] = cfg.model_dump(mode="json")
    if cfg.export.provenance_note:
        prov["note"] = cfg.export.provenance_note
    k = int(manifest["K"])
    experts: list[Path] = []
    for j in range(k):
        edir = src / "experts" / f"expert_{j}"
        if cfg.export.dtype == "float16":  # write f16 peft files ourselves (save_bundle's dict path is fp32)
            from bdc_assistant.disen.safetensors_io import write_safetensors

            half = ctx.dir("export") / "f16_experts" / f"expert_{j}"
            half.mkdir(parents=True, exist_ok=True)
            tensors = read_safetensors(edir / "adapter_model.safetensors")
            write_safetensors(
                half / "adapter_model.safetensors", {n: v.astype(np.float16) for n, v in tensors.items()}
            )
            (half / "adapter_config.json").write_text((edir / "adapter_config.json").read_text())
            edir = half
        experts.append(edir)
    cents = read_safetensors(src / "centroids.safetensors")["centroids"]
    state = read_safetensors(src / "hypernet.safetensors")
    out = save_bundle(
        ctx.dir("export") / "bundle",
        manifest=manifest,
        experts=experts,
        centroids=cents,
        hypernet_state=state,
        overwrite=True,
    )
    bundle = load_bundle(out)
    (out / "report.md").write_text((ctx.dir("evaluate") / "report.md").read_text())
    metrics: dict[str, Any] = {
        "bundle": str(out),
        "bundle_id": bundle.bundle_id,
        "size_bytes": sum(p.stat().st_size for p in out.rglob("*") if p.is_file()),
        "input_aware": None if routing is None else not routing["input_invariant"],
        "input_invariant_warning": warning,
    }
    if cfg.export.gguf_template and ref.gguf:
        from bdc_assistant.disen.gguf_adapter import write_template
        from bdc_assistant.disen.identity import shape_from_hf_dir

        shape = shape_from_hf_dir(Path(ref.hf_dir))
        tpath = out / "adapter_template.gguf"
        write_template(
            bundle.cat,
            tpath,
            arch=shape.arch,
            n_heads=shape.n_heads,
            n_kv_heads=shape.n_kv_heads,
            bundle_id=bundle.bundle_id,
        )
        metrics["adapter_template"] = str(tpath)
    if cfg.export.register_bundle:
        from bdc_assistant import bundles

        entry = bundles.register(out, activate=cfg.export.activate)
        metrics["registered_id"] = entry.id
        metrics["registered_path"] = str(entry.path)
        metrics["activated"] = cfg.export.activate
    return metrics
