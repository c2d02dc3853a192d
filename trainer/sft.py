"""The ``sft`` stage: one peft LoRA expert per cluster (paper eq. 13) and the SFT-on-all baseline.

Every adapter has the same r, alpha and target modules (the bundle's A_cat/B_cat layout needs that),
starts from the same frozen base, and is trained with the answer-token loss only — or, with
``sft.objective = "dpo"``, with the DPO loss on its cluster's preference pairs (:mod:`.preference`). Each is
saved in the standard peft format (``adapter_model.safetensors`` + ``adapter_config.json``) and, for the evaluation
table, also wrapped as a one-expert *static* bundle so both app backends can run it unchanged.
"""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bdc_assistant.errors import BdcError, ConfigError, DatasetError

from . import artifacts as art
from . import distributed as dist
from .config import TrainerConfig
from .modeling import Example, device_info, eval_loss, load_base, total_steps, train_loop
from .static import save_static_bundle

if TYPE_CHECKING:
    from .runner import Context


def lora_config(cfg: TrainerConfig) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,  # type: ignore[arg-type]  # peft annotates int, accepts float
        lora_dropout=cfg.lora.dropout,
        use_rslora=cfg.lora.use_rslora,
        target_modules=list(cfg.lora.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )


def train_adapter(
    model: Any,
    cfg: TrainerConfig,
    *,
    train: list[Example],
    val: list[Example],
    pad_id: int,
    device: str,
    out_dir: Path,
    seed: int,
    desc: str,
    prefs_val: list[Any] | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Train one LoRA on ``model`` (in place, then unloaded again); return (clean base, metrics).

    With ``sft.objective = "dpo"`` ``train`` holds preference examples, and ``prefs_val`` the held-out ones
    whose reward accuracy the metrics report; ``val`` is the answer-token CE either way (one yardstick)."""
    import torch
    from peft import get_peft_model

    from .preference import dpo_loss, preference_accuracy

    torch.manual_seed(seed)
    peft_model = get_peft_model(model, lora_config(cfg))
    params = [p for p in peft_model.parameters() if p.requires_grad]
    s = cfg.sft
    steps = total_steps(len(train), s.batch_size, s.grad_accum, s.epochs, s.max_steps)
    loss_of = None
    if s.objective == "dpo":

        def loss_of(batch: list[Any]) -> Any:
            loss, _ = dpo_loss(
                peft_model, batch, pad_id, device, beta=s.dpo_beta, nll_weight=s.dpo_nll_weight
            )
            return loss

    losses = train_loop(
        model=peft_model,
        params=params,
        examples=train,
        pad_id=pad_id,
        device=device,
        steps=steps,
        batch_size=s.batch_size,
        grad_accum=s.grad_accum,
        lr=s.lr,
        weight_decay=s.weight_decay,
        warmup_ratio=s.warmup_ratio,
        seed=seed,
        desc=desc,
        loss_of=loss_of,
    )
    val_after = eval_loss(peft_model, val, pad_id, device, s.batch_size)
    pref_val = (
        preference_accuracy(peft_model, prefs_val or [], pad_id, device, beta=s.dpo_beta)
        if s.objective == "dpo"
        else None
    )
    peft_model.save_pretrained(str(out_dir))
    base = peft_model.unload()  # removes the LoRA layers without merging: the base is pristine again
    for p in base.parameters():
        p.requires_grad_(False)
    metrics = {
        "examples": len(train),
        "steps": steps,
        "loss_first": losses[0],
        "loss_last": sum(losses[-5:]) / len(losses[-5:]),
        "val_loss_after": val_after,
        **({"objective": "dpo", "preference_val": pref_val} if s.objective == "dpo" else {}),
    }
    return base, metrics


# ---- the stage -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SftJob:
    """One adapter to train: a cluster's expert or the SFT-on-all baseline."""

    name: str  # directory under sft/
    label: str  # static-bundle label
    cluster_name: str
    examples: list[Any]
    seed: int
    desc: str


@dataclass(frozen=True)
class TrainingSet:
    """What the adapters train on: SFT examples, or preference examples under ``sft.objective = "dpo"``."""

    train: list[Any]
    record_of: Any  # example -> index of its trajectory (its cluster label)
    val: list[Any]  # answer-token CE examples (every objective is scored on them)
    prefs_val: list[Any]


def training_set(ctx: Context, tok: Any, style: str) -> TrainingSet:
    max_len = ctx.cfg.sft.max_len
    pairs_tr, ex_tr, _, ex_val = art.encoded_examples(ctx, tok, style, max_len)
    if ctx.cfg.sft.objective != "dpo":
        return TrainingSet(ex_tr, lambda e: pairs_tr[e.pair].record, ex_val, [])
    pref_tr, pref_val = art.preference_examples(ctx, tok, style, max_len)
    if not pref_tr:
        raise DatasetError(
            "sft.objective = 'dpo' found no preference pairs: no training problem has both a verified program "
            "and a failing one in data.negatives."
        )
    return TrainingSet(pref_tr, lambda e: e.record, ex_val, pref_val)


def _sft_jobs(ctx: Context, ts: TrainingSet) -> list[SftJob]:
    cfg = ctx.cfg
    assign = art.assignments(ctx)
    labels, k = assign["labels"], int(assign["k"])
    jobs = []
    what = "preference pairs" if cfg.sft.objective == "dpo" else "training examples"
    for j in range(k):
        sub = [e for e in ts.train if labels[ts.record_of(e)] == j]
        if not sub:
            raise DatasetError(f"Cluster {j} has no {what}; lower K or add data.")
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
        jobs.append(SftJob("sft_all", "sft_all", "all", list(ts.train), cfg.run.seed + 1000, "sft on all"))
    return jobs


def _train_job(
    ctx: Context, model: Any, job: SftJob, ts: TrainingSet, pad: int, device: str, out: Path
) -> Any:
    return train_adapter(
        model,
        ctx.cfg,
        train=job.examples,
        val=ts.val,
        pad_id=pad,
        device=device,
        out_dir=out,
        seed=job.seed,
        desc=job.desc,
        prefs_val=ts.prefs_val,
    )


def stage_sft(ctx: Context) -> dict[str, Any]:
    cfg = ctx.cfg
    launch = dist.launch_from_env()
    ref = art.base_ref(ctx)
    model, tok, device = load_base(ref, cfg)
    pad = int(tok.pad_token_id)
    ts = training_set(ctx, tok, ref.prompt_style)
    sdir = ctx.dir("sft")
    metrics: dict[str, Any] = {
        "base": ref.identity,
        "prompt_style": ref.prompt_style,
        "objective": cfg.sft.objective,
        "train_examples": len(ts.train),
        "val_examples": len(ts.val),
        "val_loss_base": eval_loss(model, ts.val, pad, device, cfg.sft.batch_size),
        "adapters": {},
        "processes": launch.world,
    }
    if cfg.sft.objective == "dpo":
        metrics["val_preference_pairs"] = len(ts.prefs_val)
    jobs = _sft_jobs(ctx, ts)
    for i, job in enumerate(jobs):  # this rank's share first, then collect the others'
        if launch.owns(i):
            model, m = _train_job(ctx, model, job, ts, pad, device, sdir / job.name)
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
    cents = art.centroids(ctx)
    mean_c = cents.mean(axis=0)
    for job in jobs:
        save_static_bundle(
            sdir / "bundles" / job.label,
            sdir / job.name,
            base=ref.identity,
            encoder=art.encoder_info(ctx),
            centroid=mean_c if np.linalg.norm(mean_c) > 1e-6 else cents[0],
            name=job.cluster_name,
            provenance=art.provenance(ctx),
        )
    metrics["runtime"] = device_info(device)
    return metrics


def sft_worker(ctx: Context, started: float, *, fresh: bool = False) -> None:
    """A non-zero rank's whole job: wait for rank 0's clustering, train this rank's adapters, hand them over."""
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
        ref = art.base_ref(ctx)
        model, tok, device = load_base(ref, ctx.cfg)
        pad = int(tok.pad_token_id)
        ts = training_set(ctx, tok, ref.prompt_style)
        for i, job in enumerate(_sft_jobs(ctx, ts)):
            if launch.owns(i):
                tmp = parts / f".{job.name}.rank{launch.rank}"
                if tmp.exists():
                    shutil.rmtree(tmp)
                model, m = _train_job(ctx, model, job, ts, pad, device, tmp)
                dist.publish_part(parts, job.name, tmp, {**m, "rank": launch.rank})
    except Exception as exc:
        dist.mark_failed(
            parts, launch, str(exc) if isinstance(exc, BdcError) else f"{type(exc).__name__}: {exc}"
        )
        raise
