"""The ``sft`` stage: one peft LoRA expert per cluster (paper eq. 13) and the SFT-on-all baseline.

Every adapter has the same r, alpha and target modules (the bundle's A_cat/B_cat layout needs that),
starts from the same frozen base, and is trained with the answer-token loss only. Each is saved in the
standard peft format (``adapter_model.safetensors`` + ``adapter_config.json``) and, for the evaluation
table, also wrapped as a one-expert *static* bundle so both app backends can run it unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .config import TrainerConfig
from .modeling import Example, eval_loss, total_steps, train_loop


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
) -> tuple[Any, dict[str, Any]]:
    """Train one LoRA on ``model`` (in place, then unloaded again); return (clean base, metrics)."""
    import torch
    from peft import get_peft_model

    torch.manual_seed(seed)
    peft_model = get_peft_model(model, lora_config(cfg))
    params = [p for p in peft_model.parameters() if p.requires_grad]
    s = cfg.sft
    steps = total_steps(len(train), s.batch_size, s.grad_accum, s.epochs, s.max_steps)
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
    )
    val_after = eval_loss(peft_model, val, pad_id, device, s.batch_size)
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
    }
    return base, metrics
