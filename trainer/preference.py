"""Preference pairs (a verified program over a failing one of the same problem) and the DPO loss.

Why: supervised tuning on the base's own verified programs sharpens what the model already writes, and on the
0.5B base it cost pass@1 ("lost care": the tuned model keeps the example's literal, sums instead of counting).
A failing program of the same problem says what *not* to write; direct preference optimization (Rafailov et
al. 2023) raises the verified program's likelihood relative to the failing one's, measured against the frozen
base, so problems the base already answers well are left where they were.

Both sides are shaped by exactly the same code as an SFT pair (:func:`trainer.pairs.pairs_for`: the app's
prompt, the solution aligned to the stub, the code fence), so the pair differs in the program only, not in
formatting. Each problem gives ``max(#chosen, #rejected)`` pairs, cycling the shorter list, so every verified
and every failing program is used and no problem dominates by its product.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .data import Trajectory
from .modeling import Example, answer_tail, collate, encode
from .pairs import Pair, Style, pairs_for


@dataclass(frozen=True)
class PreferencePair:
    chosen: Pair
    rejected: Pair


@dataclass(frozen=True)
class PreferenceExample:
    chosen: Example
    rejected: Example
    record: int  # index of the chosen trajectory in its split (its cluster label)


def preference_pairs(
    records: Sequence[Trajectory],
    negatives: Iterable[Trajectory],
    style: Style,
    kinds: Iterable[str],
    *,
    align: bool = True,
) -> list[PreferencePair]:
    """Every problem of ``records`` that has a failing program in ``negatives``: its pairs, kind by kind."""
    wanted = set(kinds)
    failing: dict[str, list[Trajectory]] = {}
    for neg in negatives:
        failing.setdefault(neg.group(), []).append(neg)
    by_problem: dict[str, list[int]] = {}
    for i, rec in enumerate(records):
        by_problem.setdefault(rec.group(), []).append(i)
    out: list[PreferencePair] = []
    for group, indices in by_problem.items():
        if group not in failing:
            continue
        for kind in sorted(wanted):
            chosen = [
                p for i in indices for p in pairs_for(records[i], i, style, align=align) if p.kind == kind
            ]
            targets = {c.target for c in chosen}
            # each failing program shaped as if it answered the chosen record's own text (its prompt, its stub;
            # same index: same cluster), so the two sides differ in the program only
            rejected = {
                i: [
                    p
                    for neg in failing[group]
                    for p in pairs_for(replace(neg, problem=records[i].problem), i, style, align=align)
                    if p.kind == kind and p.target not in targets
                ]
                for i in indices
            }
            n_failing = min(len(r) for r in rejected.values())
            if not chosen or not n_failing:
                continue
            for t in range(max(len(chosen), n_failing)):
                c = chosen[t % len(chosen)]
                out.append(PreferencePair(c, rejected[c.record][t % n_failing]))
    return out


def encode_preferences(
    tok: Any, prefs: Sequence[PreferencePair], max_len: int, style: str
) -> list[PreferenceExample]:
    """Both sides tokenised like SFT examples; a pair whose side has no answer token left is dropped."""
    out = []
    for pref in prefs:
        chosen = encode(tok, [pref.chosen], max_len, style)
        rejected = encode(tok, [pref.rejected], max_len, style)
        if chosen and rejected:
            out.append(PreferenceExample(chosen[0], rejected[0], pref.chosen.record))
    return out


def answer_logps(model: Any, batch: dict[str, Any]) -> tuple[Any, Any]:
    """(sum of the answer tokens' log-probabilities, their count) per row, on the answer tail only."""
    import torch

    logits, target = answer_tail(model, batch)
    mask = target != -100
    logp = torch.log_softmax(logits, dim=-1).gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (logp * mask).sum(dim=-1), mask.sum(dim=-1)


def dpo_loss(
    model: Any,
    batch: Sequence[PreferenceExample],
    pad_id: int,
    device: str,
    *,
    beta: float,
    nll_weight: float,
) -> tuple[Any, dict[str, float]]:
    """Mean DPO loss over ``batch`` (a peft model: the reference is the same model with its adapter off), plus
    ``nll_weight`` × the chosen side's per-token cross-entropy; and the batch's reward accuracy and margin."""
    import torch

    n = len(batch)
    tensors = collate([p.chosen for p in batch] + [p.rejected for p in batch], pad_id, device)
    policy, counts = answer_logps(model, tensors)
    with torch.no_grad(), model.disable_adapter():
        reference, _ = answer_logps(model, tensors)
    chosen_ratio = policy[:n] - reference[:n]
    rejected_ratio = policy[n:] - reference[n:]
    margin = beta * (chosen_ratio - rejected_ratio)
    loss = -torch.nn.functional.logsigmoid(margin).mean()
    if nll_weight:
        loss = loss + nll_weight * (-(policy[:n] / counts[:n].clamp(min=1))).mean()
    stats = {"accuracy": float((margin > 0).float().mean()), "margin": float(margin.detach().mean())}
    return loss, stats


def preference_accuracy(
    model: Any, examples: Sequence[PreferenceExample], pad_id: int, device: str, *, beta: float
) -> dict[str, float] | None:
    """On held-out pairs: how often the adapter prefers the verified program more than the base does, and the
    mean margin (None when there are no pairs)."""
    import torch

    if not examples:
        return None
    acc, margin = 0.0, 0.0
    with torch.no_grad():
        for ex in examples:
            _, stats = dpo_loss(model, [ex], pad_id, device, beta=beta, nll_weight=0.0)
            acc += stats["accuracy"]
            margin += stats["margin"]
    return {"accuracy": acc / len(examples), "margin": margin / len(examples), "pairs": len(examples)}
