"""Input-awareness: the metrics on hand-made gates, % of oracle on hand-made records, a hypernetwork really
trained (through the LM, hook mode) on separable clusters that routes, and the same metric failing on an
input-invariant f — which is also what the export check refuses."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from bdc_assistant.errors import BundleError
from trainer.routing import (
    INVARIANT_SPREAD,
    RoutingReport,
    check_input_aware,
    expert_gate_means,
    markdown,
    nearest_cluster,
    oracle_fraction,
    routing_report,
)


def test_report_numbers_on_hand_made_gates() -> None:
    # 4 problems, K = 2, r = 2, L = 1: expert-major slots [e0 e0 e1 e1]
    g = np.array(
        [[[0.9, 0.7, 0.2, 0.2]], [[0.6, 0.6, 0.5, 0.3]], [[0.1, 0.3, 0.8, 0.8]], [[0.9, 0.9, 0.85, 0.85]]]
    )
    means = expert_gate_means(g, 2)
    assert np.allclose(means, [[0.8, 0.2], [0.6, 0.4], [0.2, 0.8], [0.9, 0.85]])
    rep = routing_report(means, np.array([0, 0, 1, 1]))
    assert rep.accuracy == 0.75  # the last problem prefers expert 0 in absolute terms
    assert rep.relative_accuracy == 1.0  # ... but more expert 1 than the average problem does
    assert rep.chance == 0.5 and rep.counts == (2, 2)
    assert rep.gate_std == pytest.approx((np.std([0.8, 0.6, 0.2, 0.9]) + np.std([0.2, 0.4, 0.8, 0.85])) / 2)
    assert rep.gate_range == pytest.approx(0.7)
    assert rep.mean_gate_by_cluster[1] == pytest.approx((0.55, 0.825))
    assert rep.cluster_gap == pytest.approx(((0.7 - 0.55) + (0.825 - 0.3)) / 2)
    assert not rep.input_invariant
    d = rep.as_dict()
    assert d["input_invariant"] is False and d["accuracy"] == 0.75
    # identical gates for everyone: spread 0, flagged; one problem cannot say either way
    flat = routing_report(np.tile([[0.5, 0.5]], (4, 1)), np.array([0, 1, 1, 1]))
    assert flat.gate_std == 0.0 and flat.input_invariant and flat.chance == 0.75
    assert not routing_report(np.array([[0.5, 0.5]]), np.array([0])).input_invariant


def test_nearest_cluster_uses_cosine() -> None:
    mu = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert nearest_cluster(np.array([[5.0, 1.0], [0.1, 0.2], [-1.0, -3.0]]), mu).tolist() == [0, 1, 0]


def _rec(pid: str, ok: bool) -> dict:
    return {
        "id": pid,
        "kind": "call",
        "error": None,
        "candidates": [{"public": [], "private": ["pass" if ok else "wrong"]}],
    }


def _flip(rec: dict) -> dict:
    """The same problem answered the other way (a second sample)."""
    was = rec["candidates"][0]["private"][0] == "pass"
    return _rec(rec["id"], not was)


def test_pct_of_oracle_from_the_table_rows() -> None:
    rows = ["SFT on cluster 0 (a)", "SFT on cluster 1 (b)"]
    results = {
        rows[0]: {"humaneval": [_rec("p0", True), _rec("p1", False), _rec("p2", True), _rec("p3", True)]},
        rows[1]: {"humaneval": [_rec("p0", False), _rec("p1", True), _rec("p2", False), _rec("p3", False)]},
        "DisenLoRA": {
            "humaneval": [_rec("p0", True), _rec("p1", False), _rec("p2", False), _rec("p3", True)]
        },
    }
    own = {("humaneval", "p0"): 0, ("humaneval", "p1"): 1, ("humaneval", "p2"): 1, ("humaneval", "p3"): 0}
    out = oracle_fraction(results, own, rows)
    assert out is not None
    # oracle: p0 by expert 0 ✓, p1 by expert 1 ✓, p2 by expert 1 ✗, p3 by expert 0 ✓ → 75 %; DisenLoRA 50 %
    assert out["oracle_pass_at_1"] == 75.0 and out["problems"] == 4 and out["own_cluster_counts"] == [2, 2]
    assert out["DisenLoRA"] == {"pass_at_1": 50.0, "pct_of_oracle": 66.7}
    assert "TWIN" not in out
    assert oracle_fraction({"DisenLoRA": {}}, own, rows) is None  # the per-cluster rows were not evaluated
    # several samples per problem: each problem counts with its pass fraction, not its last answer
    twice = {
        row: {g: recs + [_flip(r) for r in recs] for g, recs in per.items()} for row, per in results.items()
    }
    assert oracle_fraction(twice, own, rows)["oracle_pass_at_1"] == 50.0
    text = markdown({"split": "validation", "problems": 3, "bundles": {}, "oracle": out})
    assert "DisenLoRA 50.00 (66.7 % of oracle)" in text


def _assert_input_aware(rep: RoutingReport) -> None:
    """What the trained f must satisfy; an input-invariant artifact has to fail it."""
    assert rep.accuracy >= 0.8, rep
    assert rep.gate_std > 10 * INVARIANT_SPREAD, rep
    assert not rep.input_invariant


def _around(mu: np.ndarray, labels: np.ndarray, rng: np.random.Generator, noise: float = 0.3) -> np.ndarray:
    e = mu[labels] + noise * rng.standard_normal((len(labels), mu.shape[1])) / np.sqrt(mu.shape[1])
    return (e / np.linalg.norm(e, axis=1, keepdims=True)).astype(np.float32)


def _sample(model, hooks, prompts: torch.Tensor, gates: torch.Tensor, new: int, seed: int) -> torch.Tensor:
    """Sample ``new`` tokens per prompt from the base with the given per-sample gates (expert k's text)."""
    gen = torch.Generator().manual_seed(seed)
    ids = prompts
    with torch.no_grad():
        hooks.set_gates(gates)
        for _ in range(new):
            logits = model(input_ids=ids).logits[:, -1, :].float()
            nxt = torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=gen)
            ids = torch.cat([ids, nxt], dim=1)
        hooks.set_gates(None)
    return ids


def test_input_aware_hypernet_trained_through_the_lm_routes_by_cluster(tiny_llama, tmp_path: Path) -> None:
    """Cluster k's text is sampled from the base with expert k alone; problems of cluster k sit around
    centroid k. f is trained exactly like the hypernet stage (hook mode, answer-token CE, only f trains)
    and must learn to route by the embedding; the same metric fails on f with its input layer zeroed."""
    from bdc_assistant.disen.bundle import load_bundle
    from bdc_assistant.disen.hypernet import build_hypernet
    from bdc_assistant.disen.identity import identity_of_hf_dir
    from bdc_assistant.disen.random_bundle import make_random_bundle
    from bdc_assistant.disen.torch_apply import GateHooks
    from trainer.config import load_config
    from trainer.hypernet import GateFeeder, assert_only_hypernet_trains
    from trainer.modeling import BaseRef, Example, load_base, train_loop

    ident, _ = identity_of_hf_dir(tiny_llama.hf_dir)
    model, _tok, _ = load_base(
        BaseRef(str(tiny_llama.hf_dir), None, ident.as_dict(), "completion"),
        load_config(None, ["base.device='cpu'"]),
    )
    bundle = load_bundle(
        make_random_bundle(
            tiny_llama.hf_dir, tmp_path / "b", K=2, r=2, seed=3, scale=1.0, embed_dim=8, hidden=8
        )
    )
    k, r, n_layers = 2, 2, bundle.n_layers
    per, prompt_len, new = 8, 3, 16
    labels = np.repeat(np.arange(k), per)
    onehot = torch.zeros(len(labels), n_layers, k * r)
    for i, lab in enumerate(labels):
        onehot[i, :, lab * r : (lab + 1) * r] = 1.0
    prompts = torch.randint(
        3, tiny_llama.vocab_size, (len(labels), prompt_len), generator=torch.Generator().manual_seed(0)
    )
    mu = bundle.centroids
    rng = np.random.default_rng(0)
    emb = _around(mu, labels, rng)
    f = build_hypernet(8, k, n_layers, k, r, hidden=16, seed=0)
    with GateHooks(model, bundle) as hooks:
        seqs = _sample(model, hooks, prompts, onehot, new, seed=0)
        examples = [
            Example(tuple(s.tolist()), (-100,) * prompt_len + tuple(s[prompt_len:].tolist()), i)
            for i, s in enumerate(seqs)
        ]
        feed = GateFeeder(hooks, f, emb, mu, list(range(len(examples))), "cpu")
        assert_only_hypernet_trains(model, hooks, f)
        train_loop(
            model=model,
            params=list(f.parameters()),
            examples=examples,
            pad_id=0,
            device="cpu",
            steps=30,
            batch_size=4,
            grad_accum=1,
            lr=5e-2,
            weight_decay=0.0,
            warmup_ratio=0.0,
            seed=0,
            desc="t",
            before_forward=feed,
        )
    f.eval()
    held_out = _around(mu, labels, np.random.default_rng(1))  # fresh problems of the same clusters

    def report(net) -> RoutingReport:
        with torch.no_grad():
            e = torch.from_numpy(held_out)
            g = net(e, e @ torch.from_numpy(mu).T).numpy()
        return routing_report(expert_gate_means(g, k), labels)

    trained = report(f)
    _assert_input_aware(trained)

    invariant = copy.deepcopy(f)  # same trained weights, but the input never reaches the output
    with torch.no_grad():
        invariant.fc1.weight.zero_()
    flat = report(invariant)
    assert (
        flat.gate_std == 0.0 and flat.gate_range == 0.0 and flat.cluster_gap == 0.0 and flat.input_invariant
    )
    assert flat.accuracy <= flat.chance == 0.5
    with pytest.raises(AssertionError):
        _assert_input_aware(flat)
    # the export check: silent on the trained f, a warning or a refusal on the invariant one
    assert check_input_aware(trained.as_dict(), refuse=True, what="f") is None
    assert "do not depend on the input" in (check_input_aware(flat.as_dict(), refuse=False, what="f") or "")
    with pytest.raises(BundleError, match="Refusing to export"):
        check_input_aware(flat.as_dict(), refuse=True, what="f")


def test_bundle_routing_reads_the_bundles_own_hypernet(tiny_llama, tmp_path: Path) -> None:
    """bundle_routing = the numpy hypernetwork the app runs; a constant-gate static bundle is invariant."""
    from bdc_assistant.disen.bundle import load_bundle
    from bdc_assistant.disen.hypernet import hypernet_numpy
    from bdc_assistant.disen.random_bundle import make_random_bundle
    from trainer.routing import bundle_gates, bundle_routing
    from trainer.static import save_static_bundle

    b = load_bundle(
        make_random_bundle(
            tiny_llama.hf_dir, tmp_path / "b", K=2, r=2, seed=4, embed_dim=8, hidden=8, spread_gates=True
        )
    )
    e = _around(b.centroids, np.repeat(np.arange(2), 5), np.random.default_rng(2))
    g = bundle_gates(b, e)
    assert np.allclose(g, hypernet_numpy(b.hypernet_state, e, e @ b.centroids.T), atol=1e-6)
    assert not bundle_routing(b, e, np.repeat(np.arange(2), 5)).input_invariant
    static = load_bundle(
        save_static_bundle(
            tmp_path / "s",
            b.path / "experts" / "expert_0",
            base=b.manifest["base"],
            encoder={"name": "enc", "dim": 8},
            centroid=np.ones(8),
            name="x",
            provenance={},
        )
    )
    assert bundle_routing(static, e, np.zeros(10, np.int64)).input_invariant
