"""The seven stage bodies. Each reads its upstream stages' files, writes into its own directory and
returns its metrics (the runner records them in ``stage.json`` with the resolved config and data hash).

    data      → data/train.jsonl, data/val.jsonl
    cluster   → cluster/centroids.safetensors, cluster/assignments.json, cluster/clusters.png
    sft       → sft/expert_<k>/ (peft), sft/sft_all/, sft/bundles/<name>/ (one-expert static bundles)
    hypernet  → hypernet/bundle/ (the DisenLoRA candidate: experts + centroids + trained f)
    baselines → baselines/<ties|dare>/adapter/ and .../bundle/
    evaluate  → evaluate/report.json, evaluate/report.md, evaluate/results.jsonl
    export    → export/bundle/ (+ adapter_template.gguf), registered in the app's bundles dir
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bdc_assistant.errors import BdcError, ConfigError, DatasetError

from . import data as data_mod
from .runner import Context

# ---- helpers ---------------------------------------------------------------------------------------------


def _records(ctx: Context, split: str) -> list[data_mod.Trajectory]:
    return (
        list(data_mod.read_jsonl(ctx.dir("data") / f"{split}.jsonl"))
        if (ctx.dir("data") / f"{split}.jsonl").exists()
        else []
    )


def _encoder(ctx: Context) -> Any:
    from bdc_assistant.encoder import Encoder
    from bdc_assistant.models.embedded import encoder_path

    path = Path(ctx.cfg.cluster.encoder).expanduser() if ctx.cfg.cluster.encoder else encoder_path()
    return Encoder(path)


def _embed(encoder: Any, texts: list[str], desc: str) -> np.ndarray:
    from tqdm import tqdm

    chunks = [texts[i : i + 64] for i in range(0, len(texts), 64)]
    quiet = len(chunks) < 2 or os.environ.get("BDC_NO_PROGRESS") == "1"
    out = [encoder.embed(c) for c in tqdm(chunks, desc=desc, unit="batch", disable=quiet)]
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 1), np.float32)


def _centroids(ctx: Context) -> np.ndarray:
    from bdc_assistant.disen.safetensors_io import read_safetensors

    return read_safetensors(ctx.dir("cluster") / "centroids.safetensors")["centroids"]


def _assignments(ctx: Context) -> dict[str, Any]:
    return json.loads((ctx.dir("cluster") / "assignments.json").read_text())


def _encoder_info(ctx: Context) -> dict[str, Any]:
    return dict(ctx.record("cluster")["metrics"]["encoder"])


def _base(ctx: Context) -> Any:
    from .modeling import resolve_base

    return resolve_base(ctx.cfg, ctx.out / "base")


def _provenance(ctx: Context) -> dict[str, Any]:
    drec = ctx.record("data")["metrics"]
    return {
        "run_name": ctx.cfg.run.name,
        "data_hash": ctx.data_hash(),
        "trajectories": {"train": drec["train"], "validation": drec["validation"]},
        "sources": drec.get("sources", {}),
        "bootstrap": drec.get("bootstrap_note"),
        "app_trajectories_seen": drec.get("app_trajectories_seen", 0),
        "trainer": "python -m trainer (bdc-assistant)",
    }


def _expert_dirs(ctx: Context) -> list[Path]:
    k = int(_assignments(ctx)["k"])
    return [ctx.dir("sft") / f"expert_{i}" for i in range(k)]


# ---- data ------------------------------------------------------------------------------------------------


def stage_data(ctx: Context) -> dict[str, Any]:
    from bdc_assistant import bundles

    d = ctx.cfg.data
    inputs: list[str | Path] = list(d.inputs)
    app_seen = 0
    if d.app_trajectories:
        app_seen = bundles.count_trajectories()
        tdir = bundles.trajectories_dir()
        if tdir.is_dir():
            inputs.append(tdir)
    files = data_mod.expand_inputs(inputs)
    train, val, report = data_mod.build(
        files,
        synthetic_n=d.synthetic,
        bootstrap_sets=list(d.bootstrap),
        bootstrap_dir=d.bootstrap_dir,
        bootstrap_limit=d.bootstrap_limit,
        val_fraction=d.val_fraction,
        max_chars=d.max_chars,
        min_public_pass_rate=d.min_public_pass_rate,
        seed=ctx.cfg.run.seed,
    )
    data_mod.write_jsonl(ctx.dir("data") / "train.jsonl", train)
    data_mod.write_jsonl(ctx.dir("data") / "val.jsonl", val)
    sources: dict[str, int] = {}
    for r in train + val:
        sources[r.source or "unknown"] = sources.get(r.source or "unknown", 0) + 1
    note = None
    if d.bootstrap:
        note = (
            "bootstrapped from reference solutions of the offline problem sets "
            f"({', '.join(d.bootstrap)}); thoughts are rule-written summaries of the reference code, not LLM search"
        )
    return {
        **asdict(report),
        "files": [str(f) for f in files],
        "sources": sources,
        "bootstrap_note": note,
        "app_trajectories_seen": app_seen,
    }


# ---- cluster ---------------------------------------------------------------------------------------------


def stage_cluster(ctx: Context) -> dict[str, Any]:
    from bdc_assistant.disen.safetensors_io import write_safetensors

    from . import cluster as cl

    c = ctx.cfg.cluster
    train = _records(ctx, "train")
    texts = ["\n".join(getattr(r, f) for f in c.embed_fields) for r in train]
    encoder = _encoder(ctx)
    emb = _embed(encoder, texts, "embed")
    result = cl.choose_k(
        emb, k=c.k, k_min=c.k_min, k_max=c.k_max, iters=c.iters, restarts=c.restarts, seed=ctx.cfg.run.seed
    )
    names = cl.cluster_names([r.problem for r in train], result.labels, result.k)
    sdir = ctx.dir("cluster")
    write_safetensors(sdir / "centroids.safetensors", {"centroids": result.centroids})
    sizes = [int((result.labels == j).sum()) for j in range(result.k)]
    (sdir / "assignments.json").write_text(
        json.dumps(
            {
                "k": result.k,
                "labels": [int(x) for x in result.labels],
                "names": names,
                "sizes": sizes,
                "problem_ids": [r.group() for r in train],
            },
            indent=1,
        )
    )
    plot = None
    if c.plot:
        try:
            plot = cl.plot_clusters(emb, result.labels, names, sdir / "clusters.png", ctx.cfg.run.seed)
        except ImportError as exc:  # matplotlib / scikit-learn are the optional `plots` extra
            print(f"[trainer] cluster plot skipped: {exc}", file=sys.stderr)
    return {
        "k": result.k,
        "k_criterion": "fixed" if c.k else "max mean silhouette (cosine) over K in [k_min, k_max]",
        "silhouette": {str(k): round(v, 4) for k, v in result.silhouette.items()},
        "mean_cosine_distance": round(result.cost, 4),
        "sizes": sizes,
        "names": names,
        "encoder": {"name": encoder.name, "dim": int(emb.shape[1])},
        "plot": plot,
    }


# ---- sft -------------------------------------------------------------------------------------------------


def _examples(ctx: Context, tok: Any, style: str, max_len: int) -> tuple[list, list, list, list]:
    from .modeling import encode
    from .pairs import build_pairs

    train, val = _records(ctx, "train"), _records(ctx, "val")
    p_tr, p_val = build_pairs(train, style), build_pairs(val, style)  # type: ignore[arg-type]
    ex_val = encode(tok, p_val, max_len, style)
    cap = ctx.cfg.sft.val_examples
    if cap and len(ex_val) > cap:  # a fixed, seeded subset: every adapter is scored on the same pairs
        ex_val = sorted(random.Random(ctx.cfg.run.seed).sample(ex_val, cap), key=lambda e: e.pair)
    return p_tr, encode(tok, p_tr, max_len, style), p_val, ex_val


@dataclass(frozen=True)
class SftJob:
    """One adapter to train: a cluster's expert or the SFT-on-all baseline."""

    name: str  # directory under sft/
    label: str  # static-bundle label
    cluster_name: str
    examples: list[Any]
    seed: int
    desc: str


def _sft_jobs(ctx: Context, pairs_tr: list[Any], ex_tr: list[Any]) -> list[SftJob]:
    cfg = ctx.cfg
    assign = _assignments(ctx)
    labels, k = assign["labels"], int(assign["k"])
    jobs = []
    for j in range(k):
        sub = [e for e in ex_tr if labels[pairs_tr[e.pair].record] == j]
        if not sub:
            raise DatasetError(f"Cluster {j} has no training examples; lower K or add data.")
        jobs.append(
            SftJob(
                f"expert_{j}",
                f"cluster_{j}",
                assign["names"][j],
                sub,
                cfg.run.seed + j,
                f"sft expert {j}/{k}",
            )
        )
    if cfg.sft.sft_all:
        jobs.append(SftJob("sft_all", "sft_all", "all", list(ex_tr), cfg.run.seed + 1000, "sft on all"))
    return jobs


def _train_job(
    ctx: Context, model: Any, job: SftJob, ex_val: list[Any], pad: int, device: str, out: Path
) -> Any:
    from .sft import train_adapter

    return train_adapter(
        model,
        ctx.cfg,
        train=job.examples,
        val=ex_val,
        pad_id=pad,
        device=device,
        out_dir=out,
        seed=job.seed,
        desc=job.desc,
    )


def stage_sft(ctx: Context) -> dict[str, Any]:
    from . import distributed as dist
    from .modeling import device_info, eval_loss, load_base
    from .static import save_static_bundle

    cfg = ctx.cfg
    launch = dist.launch_from_env()
    ref = _base(ctx)
    model, tok, device = load_base(ref, cfg)
    pad = int(tok.pad_token_id)
    pairs_tr, ex_tr, _, ex_val = _examples(ctx, tok, ref.prompt_style, cfg.sft.max_len)
    sdir = ctx.dir("sft")
    metrics: dict[str, Any] = {
        "base": ref.identity,
        "prompt_style": ref.prompt_style,
        "train_examples": len(ex_tr),
        "val_examples": len(ex_val),
        "val_loss_base": eval_loss(model, ex_val, pad, device, cfg.sft.batch_size),
        "adapters": {},
        "processes": launch.world,
    }
    jobs = _sft_jobs(ctx, pairs_tr, ex_tr)
    for i, job in enumerate(jobs):  # this rank's share first, then collect the others'
        if launch.owns(i):
            model, m = _train_job(ctx, model, job, ex_val, pad, device, sdir / job.name)
            metrics["adapters"][job.name] = {**m, "rank": launch.rank}
    parts = dist.parts_dir(ctx.out, ctx.key("sft"))
    for i, job in enumerate(jobs):
        if not launch.owns(i):
            metrics["adapters"][job.name] = dist.collect_part(
                parts, job.name, sdir / job.name, timeout_s=dist.wait_timeout_s()
            )
    if launch.distributed:
        shutil.rmtree(parts, ignore_errors=True)
        with contextlib.suppress(OSError):
            parts.parent.rmdir()  # only when no other run's parts are in there
    metrics["adapters"] = {job.name: metrics["adapters"][job.name] for job in jobs}  # job order
    cents = _centroids(ctx)
    mean_c = cents.mean(axis=0)
    for job in jobs:
        save_static_bundle(
            sdir / "bundles" / job.label,
            sdir / job.name,
            base=ref.identity,
            encoder=_encoder_info(ctx),
            centroid=mean_c if np.linalg.norm(mean_c) > 1e-6 else cents[0],
            name=job.cluster_name,
            provenance=_provenance(ctx),
        )
    metrics["runtime"] = device_info(device)
    return metrics


def sft_worker(ctx: Context, started: float, *, fresh: bool = False) -> None:
    """A non-zero rank's whole job: wait for rank 0's clustering, train this rank's adapters, hand them over."""
    from . import distributed as dist
    from .modeling import load_base

    launch = dist.launch_from_env()
    abort = ctx.out / dist.ABORT_MARKER

    def current(stage: str) -> bool:
        """Finished with the current inputs (and, for a forced run, finished by this run)."""
        try:
            if fresh and (ctx.dir(stage) / "stage.json").stat().st_mtime < started:
                return False
            return bool(ctx.record(stage)["key"] == ctx.key(stage))
        except (ConfigError, OSError):
            return False

    timeout = dist.wait_timeout_s()
    dist.wait_until(
        lambda: current("cluster"), what="clustering", abort_marker=abort, started=started, timeout_s=timeout
    )
    if current("sft"):
        return  # already trained in an earlier run: rank 0 skips the stage too
    dist.wait_until(
        lambda: (ctx.out / "base" / "base.json").exists(),
        what="the base model",
        abort_marker=abort,
        started=started,
        timeout_s=timeout,
    )
    parts = dist.parts_dir(ctx.out, ctx.key("sft"))
    try:
        ref = _base(ctx)
        model, tok, device = load_base(ref, ctx.cfg)
        pad = int(tok.pad_token_id)
        pairs_tr, ex_tr, _, ex_val = _examples(ctx, tok, ref.prompt_style, ctx.cfg.sft.max_len)
        for i, job in enumerate(_sft_jobs(ctx, pairs_tr, ex_tr)):
            if launch.owns(i):
                tmp = parts / f".{job.name}.rank{launch.rank}"
                if tmp.exists():
                    shutil.rmtree(tmp)
                model, m = _train_job(ctx, model, job, ex_val, pad, device, tmp)
                dist.publish_part(parts, job.name, tmp, {**m, "rank": launch.rank})
    except Exception as exc:
        dist.mark_failed(
            parts, launch, str(exc) if isinstance(exc, BdcError) else f"{type(exc).__name__}: {exc}"
        )
        raise


# ---- hypernet --------------------------------------------------------------------------------------------


def stage_hypernet(ctx: Context) -> dict[str, Any]:
    import torch

    from bdc_assistant.disen.bundle import load_bundle, save_bundle
    from bdc_assistant.disen.hypernet import build_hypernet, state_to_numpy
    from bdc_assistant.disen.torch_apply import GateHooks

    from .hypernet import GateFeeder, assert_only_hypernet_trains
    from .modeling import device_info, eval_loss, load_base, total_steps, train_loop

    cfg = ctx.cfg
    h = cfg.hypernet
    ref = _base(ctx)
    model, tok, device = load_base(ref, cfg)
    pad = int(tok.pad_token_id)
    pairs_tr, ex_tr, pairs_val, ex_val = _examples(ctx, tok, ref.prompt_style, h.max_len)
    assign = _assignments(ctx)
    k, r, n_layers = int(assign["k"]), cfg.lora.r, ref.n_layers
    cents = _centroids(ctx)
    enc_info = _encoder_info(ctx)
    d = int(enc_info["dim"])
    norm = h.normalization or "sigmoid"
    f = build_hypernet(d, k, n_layers, k, r, hidden=h.hidden, normalization=norm, seed=cfg.run.seed)
    if h.init_gate > 0 and norm in ("sigmoid", "none"):
        with torch.no_grad():
            f.out.bias.fill_(math.log(h.init_gate / (1 - h.init_gate)) if norm == "sigmoid" else h.init_gate)
    manifest = {
        "base": ref.identity,
        "encoder": enc_info,
        "K": k,
        "r": r,
        "target_modules": list(cfg.lora.target_modules),
        "use_rslora": cfg.lora.use_rslora,
        "lora_alpha": cfg.lora.alpha,
        "hypernet": f.config(),
        "clusters": {"names": assign["names"], "sizes": assign["sizes"]},
        "provenance": _provenance(ctx),
        "metrics": {},
    }
    bdir = ctx.dir("hypernet") / "bundle"
    experts = _expert_dirs(ctx)
    save_bundle(bdir, manifest=manifest, experts=experts, centroids=cents, hypernet_state=state_to_numpy(f))
    bundle = load_bundle(bdir, expect_base=None)

    encoder = _encoder(ctx)
    train, val = _records(ctx, "train"), _records(ctx, "val")
    e_tr = _embed(encoder, [x.problem for x in train], "embed problems")
    e_val = (
        _embed(encoder, [x.problem for x in val], "embed problems") if val else np.zeros((0, d), np.float32)
    )
    f = f.to(device)
    with GateHooks(model, bundle) as hooks:
        feed_tr = GateFeeder(hooks, f, e_tr, bundle.centroids, [p.record for p in pairs_tr], device)
        feed_val = GateFeeder(hooks, f, e_val, bundle.centroids, [p.record for p in pairs_val], device)
        assert_only_hypernet_trains(model, hooks, f)
        bs = h.batch_size
        val_losses: dict[str, float | None] = {}
        with torch.no_grad():
            for mode in ("base", "ones"):
                feed_val.mode = mode
                val_losses[mode] = eval_loss(model, ex_val, pad, device, bs, before_forward=feed_val)
            feed_val.mode = "hypernet"
            val_losses["hypernet_init"] = eval_loss(model, ex_val, pad, device, bs, before_forward=feed_val)
        steps = total_steps(len(ex_tr), bs, 1, h.epochs, h.max_steps)
        f.train()
        losses = train_loop(
            model=model,
            params=list(f.parameters()),
            examples=ex_tr,
            pad_id=pad,
            device=device,
            steps=steps,
            batch_size=bs,
            grad_accum=1,
            lr=h.lr,
            weight_decay=0.0,
            warmup_ratio=0.05,
            seed=cfg.run.seed,
            desc="hypernet",
            before_forward=feed_tr,
        )
        f.eval()
        assert_only_hypernet_trains(model, hooks, f)
        val_losses["hypernet"] = eval_loss(model, ex_val, pad, device, bs, before_forward=feed_val)
        hooks.set_gates(None)
    # routing check: mean gate per expert for problems of each cluster (input-awareness, visible in the report)
    with torch.no_grad():
        et = torch.from_numpy(e_tr).to(device)
        g = f(et, et @ torch.from_numpy(bundle.centroids).to(device).T).cpu().numpy()  # [n, L, K·r]
    per_expert = g.reshape(len(train), n_layers, k, r).mean(axis=(1, 3))  # [n, K]
    labels = np.asarray(assign["labels"])
    routing = {
        assign["names"][j]: [round(float(x), 4) for x in per_expert[labels == j].mean(axis=0)]
        for j in range(k)
        if np.any(labels == j)
    }
    save_bundle(
        bdir,
        manifest=manifest,
        experts=experts,
        centroids=cents,
        hypernet_state=state_to_numpy(f),
        overwrite=True,
    )
    return {
        "steps": steps,
        "loss_first": losses[0],
        "loss_last": sum(losses[-5:]) / len(losses[-5:]),
        "val_loss": val_losses,
        "mean_gate_per_expert_by_cluster": routing,
        "hypernet": f.config(),
        "only_hypernet_trained": True,
        "runtime": device_info(device),
    }


# ---- baselines -------------------------------------------------------------------------------------------


def stage_baselines(ctx: Context) -> dict[str, Any]:
    from .merges import merge_experts
    from .static import save_static_bundle

    cfg = ctx.cfg
    ref = _base(ctx)
    experts = _expert_dirs(ctx)
    rank = cfg.baselines.svd_rank or len(experts) * cfg.lora.r
    cents = _centroids(ctx)
    mean_c = cents.mean(axis=0)
    out: dict[str, Any] = {}
    for method in cfg.baselines.methods:
        mdir = ctx.dir("baselines") / method
        out[method] = merge_experts(
            experts,
            method,
            density=cfg.baselines.density,
            rank=rank,
            seed=cfg.run.seed,
            out_dir=mdir / "adapter",
        )
        save_static_bundle(
            mdir / "bundle",
            mdir / "adapter",
            base=ref.identity,
            encoder=_encoder_info(ctx),
            centroid=mean_c if np.linalg.norm(mean_c) > 1e-6 else cents[0],
            name=method,
            provenance=_provenance(ctx),
        )
    return out


# ---- evaluate --------------------------------------------------------------------------------------------


def method_rows(ctx: Context) -> list[tuple[str, Path | None]]:
    assign = _assignments(ctx)
    rows: list[tuple[str, Path | None]] = []
    for m in ctx.cfg.evaluate.methods:
        if m == "base":
            rows.append(("w/o tuning", None))
        elif m == "sft_all":
            p = ctx.dir("sft") / "bundles" / "sft_all"
            if p.exists():
                rows.append(("SFT on all", p))
        elif m == "sft_clusters":
            for j, name in enumerate(assign["names"]):
                rows.append((f"SFT on cluster {j} ({name})", ctx.dir("sft") / "bundles" / f"cluster_{j}"))
        elif m in ("ties", "dare"):
            p = ctx.dir("baselines") / m / "bundle"
            if p.exists():
                rows.append(({"ties": "TIES", "dare": "DARE"}[m], p))
        elif m == "disenlora":
            rows.append(("DisenLoRA", ctx.dir("hypernet") / "bundle"))
        else:
            raise DatasetError(f"Unknown evaluation method '{m}'.")
    return rows


def app_settings(ctx: Context, ref: Any) -> Any:
    from bdc_assistant.config import load_settings

    e = ctx.cfg.evaluate
    return load_settings(
        config_file=ctx.dir("evaluate")
        / "no-user-config.toml",  # the user's config must not change the table
        models={
            "base_gguf": ref.gguf or "",
            "base_hf_dir": ref.hf_dir,
            "encoder": ctx.cfg.cluster.encoder,
            "chat_template": ref.prompt_style,
        },
        backend={
            "name": e.backend,
            "seed": ctx.cfg.run.seed,
            "device": ctx.cfg.base.device,
            "threads": e.threads,
        },
        solver={"thought_tokens": e.thought_tokens, "max_tokens": e.max_tokens, "temperature": 0.0},
        sandbox={"timeout_s": e.timeout_s},
    )


def _eval_runs_dir(ctx: Context, ref: Any) -> Path:
    """Where answers are cached: keyed by everything that changes an answer *besides the row's bundle* (the
    evaluation settings and the base), not by ``limit`` / ``datasets`` / ``methods`` / ``threads``. Each row
    then lives in a subdirectory named by its bundle's content (``row_key``), so raising the limit reuses
    finished answers and retraining the hypernetwork re-answers only the DisenLoRA row."""
    import hashlib

    e = ctx.cfg.evaluate.model_dump(mode="json")
    for k in ("limit", "datasets", "methods", "threads"):
        e.pop(k)
    key = json.dumps({"e": e, "base": ref.identity, "style": ref.prompt_style, "v": 2}, sort_keys=True)
    return ctx.out / "evaluate_runs" / hashlib.sha256(key.encode()).hexdigest()[:12]


def row_key(bundle_dir: Path | None) -> str:
    """The content id of a row's bundle (weights + the manifest fields that shape ΔW); 'base' for none."""
    import hashlib

    if bundle_dir is None:
        return "base"
    manifest = json.loads((Path(bundle_dir) / "manifest.json").read_text())
    shaping = {k: manifest.get(k) for k in ("files", "K", "r", "lora_alpha", "use_rslora", "target_modules")}
    shaping["hypernet"] = manifest.get("hypernet")
    return hashlib.sha256(json.dumps(shaping, sort_keys=True, default=str).encode()).hexdigest()[:12]


def stage_evaluate(ctx: Context) -> dict[str, Any]:
    from bdc_assistant.sandbox import sandbox_from_settings
    from bdc_assistant.solver.session import open_solver

    from . import evaluate as ev

    cfg = ctx.cfg
    ref = _base(ctx)
    settings = app_settings(ctx, ref)
    trained = {r.problem_id for r in _records(ctx, "train") + _records(ctx, "val")}
    datasets: dict[str, list] = {}
    excluded: dict[str, int] = {}
    for name in cfg.evaluate.datasets:
        probs = ev.load_problems(name, 0)
        kept = [p for p in probs if p.id not in trained and f"{name}/{p.id}" not in trained]
        excluded[name] = len(probs) - len(kept)
        datasets[name] = kept[: cfg.evaluate.limit or None]
    rows = method_rows(ctx)
    sandbox = sandbox_from_settings(settings)
    try:
        results = ev.evaluate_methods(
            rows,
            datasets,
            lambda b: open_solver(settings, backend=cfg.evaluate.backend, bundle=str(b) if b else "none"),
            sandbox,
            _eval_runs_dir(ctx, ref),
            row_key=row_key,
            timeout_s=cfg.evaluate.timeout_s,
            max_tokens=cfg.evaluate.max_tokens,
        )
    finally:
        sandbox.close()
    tab = ev.table(results)
    title = (
        f"Table 2 (shape): {ref.identity['name']} on {', '.join(cfg.evaluate.datasets)}, "
        f"backend {cfg.evaluate.backend}, K={_assignments(ctx)['k']}, r={cfg.lora.r}"
    )
    md = ev.markdown(tab, title)
    (ctx.dir("evaluate") / "report.md").write_text(md)
    (ctx.dir("evaluate") / "report.json").write_text(json.dumps({"title": title, **tab}, indent=2))
    print(md)
    summary = tab["rows"].get("DisenLoRA", {}).get("overall")
    return {
        "table": tab,
        "summary": summary,
        "excluded_trained_problems": excluded,
        "problems": {k: len(v) for k, v in datasets.items()},
    }


# ---- export ----------------------------------------------------------------------------------------------


def stage_export(ctx: Context) -> dict[str, Any]:
    from bdc_assistant.disen.bundle import load_bundle, save_bundle
    from bdc_assistant.disen.safetensors_io import read_safetensors

    cfg = ctx.cfg
    ref = _base(ctx)
    src = ctx.dir("hypernet") / "bundle"
    manifest = json.loads((src / "manifest.json").read_text())
    ev = ctx.record("evaluate")["metrics"]
    manifest["metrics"] = {
        "summary": ev.get("summary"),
        "evaluation": ev.get("table"),
        "evaluation_backend": cfg.evaluate.backend,
        "evaluation_datasets": list(cfg.evaluate.datasets),
        "hypernet": ctx.record("hypernet")["metrics"].get("val_loss"),
    }
    prov = manifest.setdefault("provenance", {})
    prov.update(_provenance(ctx))
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


STAGE_FNS = {
    "data": stage_data,
    "cluster": stage_cluster,
    "sft": stage_sft,
    "hypernet": stage_hypernet,
    "baselines": stage_baselines,
    "evaluate": stage_evaluate,
    "export": stage_export,
}
