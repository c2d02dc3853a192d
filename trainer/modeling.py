"""The frozen base model, its identity, and the small training primitives every stage shares.

Why a hand-written loop instead of ``transformers.Trainer``: the hypernetwork stage must set per-sample
gates before every forward (hook mode), the LoRA stages need only the answer-token loss, and a GGUF-
derived model trips Trainer's quantization guard; one ~40-line loop serves all three and is easy to test.
"""

from __future__ import annotations

import json
import math
import os
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bdc_assistant import atomic
from bdc_assistant.errors import ModelError
from bdc_assistant.machine import cpu_name

from .config import TrainerConfig
from .distributed import launch_from_env, rank_device
from .pairs import Pair


@dataclass(frozen=True)
class BaseRef:
    """Where the base lives and what it is (the bundle manifest's ``base`` entry)."""

    hf_dir: str
    gguf: str | None
    identity: dict[str, Any]
    prompt_style: str  # "completion" for base models, "chat" for instruction-tuned ones

    @property
    def n_layers(self) -> int:
        return int(self.identity["n_layers"])


def resolve_base(cfg: TrainerConfig, work_dir: Path) -> BaseRef:
    """Build / locate the base once per output dir (``base.json`` remembers it for later stages)."""
    from bdc_assistant.disen.identity import identity_of_gguf, identity_of_hf_dir

    record = work_dir / "base.json"
    key = cfg.section_hash("base", "run")
    if record.exists():
        data = json.loads(record.read_text())
        if data.get("key") == key and Path(data["ref"]["hf_dir"]).is_dir():
            return BaseRef(**data["ref"])
    b = cfg.base
    gguf: Path | None
    if b.kind == "tiny":
        from bdc_assistant.models.tiny import build_tiny

        tiny = build_tiny(b.arch, work_dir / "tiny", seed=cfg.run.seed)
        hf_dir, gguf = Path(tiny.hf_dir), Path(tiny.gguf_path)
        style = "completion"
    elif b.kind == "embedded":
        from bdc_assistant.models.embedded import DEFAULT_SOLVER, install_base, solver_spec

        gguf = install_base()
        hf_dir = dequantized_hf_dir(gguf)
        style = "chat" if solver_spec(DEFAULT_SOLVER).chat else "completion"
    else:
        if not b.hf_dir:
            raise ModelError("base.kind = 'hf' needs base.hf_dir.")
        hf_dir = Path(b.hf_dir).expanduser()
        gguf = Path(b.gguf).expanduser() if b.gguf else None
        style = "chat" if _has_chat_template(hf_dir) else "completion"
    if gguf is not None:
        identity, _ = identity_of_gguf(gguf, name=b.name or None)
        _, hf_shape = identity_of_hf_dir(hf_dir)
        if hf_shape.config_hash() != identity.hf_config_hash:
            raise ModelError(f"The HF model {hf_dir} and the GGUF {gguf} are not the same architecture.")
    else:
        identity, _ = identity_of_hf_dir(hf_dir, name=b.name or None)
    ref = BaseRef(str(hf_dir), str(gguf) if gguf else None, identity.as_dict(), style)
    work_dir.mkdir(parents=True, exist_ok=True)
    atomic.write_json(record, {"key": key, "ref": asdict(ref)})  # other ranks may be polling for it
    return ref


def _has_chat_template(hf_dir: Path) -> bool:
    cfg = hf_dir / "tokenizer_config.json"
    try:
        return (
            bool(json.loads(cfg.read_text()).get("chat_template"))
            or (hf_dir / "chat_template.jinja").exists()
        )
    except (OSError, ValueError):
        return False


def dequantized_hf_dir(gguf: Path) -> Path:
    """The GGUF dequantized to an HF dir once, cached by its sha256 (the torch backend's own cache)."""
    from bdc_assistant.models.hf_cache import hf_dir_for_gguf

    return hf_dir_for_gguf(gguf)


def pick_device(name: str) -> str:
    """``auto`` / ``cuda`` / ``cpu``; under a multi-process launch ``cuda`` means this rank's own GPU."""
    from bdc_assistant.backends.gpu import cuda_available  # the app's one GPU probe

    if name == "auto":
        name = "cuda" if cuda_available() else "cpu"
    if name == "cuda" and not cuda_available():
        raise ModelError("The trainer config asks for CUDA but no CUDA GPU is available.")
    return rank_device(name, launch_from_env())


def device_info(device: str) -> dict[str, Any]:
    """Where a stage ran, for its metrics and the bundle's provenance: the CPU model and core count, and
    for a CUDA run the GPU and the torch/CUDA versions."""
    import torch

    info: dict[str, Any] = {
        "device": device,
        "torch": torch.__version__,
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
        info["cuda"] = torch.version.cuda
        info["max_memory_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return info


def load_base(ref: BaseRef, cfg: TrainerConfig) -> tuple[Any, Any, str]:
    """(model, tokenizer, device): the frozen base in eval mode (dropout off), every parameter frozen."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if cfg.base.threads:
        torch.set_num_threads(cfg.base.threads)
    device = pick_device(cfg.base.device)
    dtype = getattr(torch, cfg.base.dtype)
    tok = AutoTokenizer.from_pretrained(ref.hf_dir)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(ref.hf_dir, dtype=dtype)
    model = model.to(device)  # type: ignore[arg-type]  # transformers stubs mistype .to
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, tok, device


# ---- tokenisation -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Example:
    input_ids: tuple[int, ...]
    labels: tuple[int, ...]  # -100 on prompt tokens: the loss is on answer tokens only
    pair: int  # index into the pair list


def render_prompt(tok: Any, prompt: str, style: str) -> str:
    if style == "chat":
        return tok.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
    return prompt


def encode(tok: Any, pairs: Sequence[Pair], max_len: int, style: str) -> list[Example]:
    """Tokenise prompt+target together (so merges at the seam are the real ones) and mask the prompt."""
    out = []
    for i, pair in enumerate(pairs):
        prompt = render_prompt(tok, pair.prompt, style)
        add_special = style != "chat"
        full = list(tok(prompt + pair.target, add_special_tokens=add_special)["input_ids"])
        head = list(tok(prompt, add_special_tokens=add_special)["input_ids"])
        cut = 0
        while cut < min(len(head), len(full)) and head[cut] == full[cut]:
            cut += 1
        if tok.eos_token_id is not None:
            full.append(int(tok.eos_token_id))
        labels = [-100] * cut + full[cut:]
        if len(full) > max_len:
            # keep the end of the prompt (at least half the window) and the start of the answer
            n_answer = len(full) - cut
            keep_prompt = min(cut, max(max_len - n_answer, max_len // 2))
            keep_answer = max_len - keep_prompt
            full = full[cut - keep_prompt : cut + keep_answer]
            labels = labels[cut - keep_prompt : cut + keep_answer]
        if all(x == -100 for x in labels):
            continue
        out.append(Example(tuple(full), tuple(labels), i))
    return out


def collate(batch: Sequence[Example], pad_id: int, device: str) -> dict[str, Any]:
    import torch

    width = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, e in enumerate(batch):
        n = len(e.input_ids)
        ids[row, :n] = torch.tensor(e.input_ids)
        labels[row, :n] = torch.tensor(e.labels)
        mask[row, :n] = 1
    return {"input_ids": ids.to(device), "labels": labels.to(device), "attention_mask": mask.to(device)}


def batches(examples: Sequence[Any], batch_size: int, rng: random.Random) -> Iterator[list[Any]]:
    """One epoch of randomly permuted batches (paper §4.2.3: randomly permuted input-output pairs)."""
    order = list(range(len(examples)))
    rng.shuffle(order)
    for i in range(0, len(order), batch_size):
        yield [examples[j] for j in order[i : i + batch_size]]


def total_steps(n_examples: int, batch_size: int, grad_accum: int, epochs: float, max_steps: int) -> int:
    per_epoch = max(1, math.ceil(n_examples / batch_size / grad_accum))
    steps = max(1, math.ceil(per_epoch * epochs))
    return min(steps, max_steps) if max_steps else steps


def answer_tail(model: Any, batch: dict[str, Any]) -> tuple[Any, Any]:
    """(logits, labels) of the tail that holds the answer tokens, aligned for next-token prediction: the LM
    head only runs there (``logits_to_keep``). With a 262k-token vocabulary (Gemma-3) the head dominates a CPU
    training step, and prompts are most of each example, so this roughly halves the step time."""
    labels = batch["labels"]
    width = labels.shape[1]
    has = (labels != -100).any(dim=0).nonzero()
    first = int(has[0]) if len(has) else width - 1
    keep = min(max(width - first + 1, 2), width)
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], logits_to_keep=keep)
    return out.logits[:, :-1, :].float(), labels[:, width - keep + 1 :]


def answer_loss(model: Any, batch: dict[str, Any]) -> Any:
    """Mean cross-entropy over answer tokens (labels -100 elsewhere) — the same value as the model's own
    ``loss``, computed on the answer tail only (:func:`answer_tail`)."""
    import torch

    logits, target = answer_tail(model, batch)
    return torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=-100
    )


def train_loop(
    *,
    model: Any,
    params: list[Any],
    examples: Sequence[Any],
    pad_id: int,
    device: str,
    steps: int,
    batch_size: int,
    grad_accum: int,
    lr: float,
    weight_decay: float,
    warmup_ratio: float,
    seed: int,
    desc: str,
    before_forward: Callable[[list[Example]], None] | None = None,
    loss_of: Callable[[list[Any]], Any] | None = None,
) -> list[float]:
    """AdamW with linear warmup/decay over ``params`` only; returns the loss of every optimizer step.

    ``loss_of(batch)`` replaces the answer-token loss (preference training passes its DPO loss; ``examples``
    are then whatever it takes)."""
    import torch
    from tqdm import tqdm

    if not params:
        raise ModelError(f"{desc}: nothing to train (no trainable parameters).")
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    warm = int(steps * warmup_ratio)

    def schedule(step: int) -> float:
        if step < warm:
            return (step + 1) / max(warm, 1)
        return max(0.0, (steps - step) / max(steps - warm, 1))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    rng = random.Random(seed)
    stream = _endless(examples, batch_size, rng)
    losses: list[float] = []
    bar = tqdm(range(steps), desc=desc, unit="step", disable=os.environ.get("BDC_NO_PROGRESS") == "1")
    for _ in bar:
        opt.zero_grad(set_to_none=True)
        step_loss = 0.0
        for _ in range(grad_accum):
            batch = next(stream)
            if before_forward is not None:
                before_forward(batch)
            raw = (
                loss_of(batch) if loss_of is not None else answer_loss(model, collate(batch, pad_id, device))
            )
            loss = raw / grad_accum
            loss.backward()
            step_loss += float(loss.detach())
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        losses.append(step_loss)
        bar.set_postfix(loss=f"{step_loss:.3f}")
    return losses


def _endless(examples: Sequence[Any], batch_size: int, rng: random.Random) -> Iterator[list[Any]]:
    while True:
        yield from batches(examples, batch_size, rng)


def eval_loss(
    model: Any,
    examples: Sequence[Example],
    pad_id: int,
    device: str,
    batch_size: int,
    before_forward: Callable[[list[Example]], None] | None = None,
) -> float | None:
    """Token-weighted mean answer-token CE over ``examples`` (None when there are none)."""
    import torch

    if not examples:
        return None
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(examples), batch_size):
            batch = list(examples[i : i + batch_size])
            if before_forward is not None:
                before_forward(batch)
            tensors = collate(batch, pad_id, device)
            n = int((tensors["labels"][:, 1:] != -100).sum())
            total += float(answer_loss(model, tensors)) * n
            count += n
    return total / max(count, 1)
