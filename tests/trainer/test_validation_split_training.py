"""What the Qwen-era trainer adds: the fixed validation problems never train, one-turn (p2s) pairs in the
solver's own prompt, and the cluster warm start that makes f input-aware before its LM-loss steps."""

from __future__ import annotations

import numpy as np
import pytest

from bdc_assistant.evaluation.splits import validation_ids
from bdc_assistant.solver import prompts
from trainer import data
from trainer.data import Trajectory
from trainer.pairs import build_pairs


def _rec(pid: str, problem: str = "Write a function that adds two numbers.") -> Trajectory:
    return Trajectory(
        problem_id=pid,
        problem=f"{problem} ({pid})",
        thought="Add them.",
        solution="def add(a, b):\n    return a + b\n",
        public_pass_rate=1.0,
        source="deep",
        policy="a",
    )


def _build(records: list[Trajectory], tmp_path, holdout: bool):
    path = tmp_path / "t.jsonl"
    data.write_jsonl(path, records)
    return data.build(
        [path],
        synthetic_n=0,
        bootstrap_sets=[],
        bootstrap_dir="",
        bootstrap_limit=0,
        val_fraction=0.0,
        max_chars=10_000,
        min_public_pass_rate=1.0,
        seed=0,
        holdout_validation=holdout,
    )


def test_validation_problems_never_train_and_are_counted(tmp_path) -> None:
    mbpp_val = sorted(validation_ids("mbpp"))[0]
    cc_val = sorted(validation_ids("codecontests"))[0]
    records = [_rec(mbpp_val), _rec(f"codecontests/{cc_val}"), _rec("MbppEval/2"), _rec("p-own")]
    train, val, report = _build(records, tmp_path, holdout=True)
    assert sorted(r.problem_id for r in train + val) == ["MbppEval/2", "p-own"]
    assert report.held_out_validation == 2
    train, val, report = _build(records, tmp_path, holdout=False)
    assert len(train + val) == 4 and report.held_out_validation == 0


def test_chat_pairs_include_the_one_turn_answer_in_the_solvers_prompt() -> None:
    rec = _rec("x")
    pairs = build_pairs([rec], "chat")
    assert [p.kind for p in pairs] == ["p2t", "t2s", "p2s"]
    p2s = pairs[-1]
    assert p2s.prompt == prompts.direct_prompt(rec.problem).text
    assert p2s.target == "```python\ndef add(a, b):\n    return a + b\n```"
    assert [p.kind for p in build_pairs([rec], "chat", ["p2s"])] == ["p2s"]
    assert [p.kind for p in build_pairs([rec], "completion", ["p2s"])] == []  # completion always plans


def _centroids(d: int, k: int) -> np.ndarray:
    return np.linalg.qr(np.random.default_rng(0).normal(size=(d, k)))[0].T.astype(np.float32)  # orthonormal


def _clustered(centroids: np.ndarray, n_per: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit embeddings scattered around each centroid, and their cluster labels."""
    rng = np.random.default_rng(seed)
    d = centroids.shape[1]
    labels = np.repeat(np.arange(len(centroids)), n_per)
    e = centroids[labels] + 0.3 * rng.normal(size=(len(labels), d)).astype(np.float32)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    return e.astype(np.float32), labels


@pytest.mark.parametrize("normalization", ["sigmoid", "softmax"])
def test_route_warmup_makes_f_route_each_cluster_to_its_expert(normalization: str) -> None:
    torch = pytest.importorskip("torch")
    from bdc_assistant.disen.hypernet import build_hypernet
    from trainer.hypernet import route_warmup

    cents = _centroids(16, 3)
    e, labels = _clustered(cents, n_per=12, seed=0)
    f = build_hypernet(16, 3, 2, 3, 2, hidden=16, normalization=normalization, seed=0)
    with torch.no_grad():  # at init every gate is the same for every input: nothing routes
        g0 = f(torch.from_numpy(e), torch.from_numpy(e @ cents.T)).numpy()
    assert np.ptp(g0, axis=0).max() < 1e-6
    out = route_warmup(f, e, cents, labels, steps=200, lr=1e-2, high=0.9)
    assert out["loss_last"] < out["loss_first"] and out["train_routing_accuracy"] == 1.0
    held_e, held_labels = _clustered(cents, n_per=5, seed=1)  # new inputs around the same centroids
    with torch.no_grad():
        g = f(torch.from_numpy(held_e), torch.from_numpy(held_e @ cents.T)).numpy()
    per_expert = g.reshape(len(held_e), 2, 3, 2).mean(axis=(1, 3))
    assert (per_expert.argmax(axis=1) == held_labels).mean() >= 0.8
