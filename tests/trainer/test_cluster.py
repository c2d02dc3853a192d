"""Cosine k-means (paper eq. 12), the K criterion, cluster names and the picture."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trainer import cluster as cl


def _planted(
    k: int, per: int, d: int = 16, noise: float = 0.05, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = cl.normalize(rng.normal(size=(k, d)))
    labels = np.repeat(np.arange(k), per)
    x = centers[labels] + noise * rng.normal(size=(k * per, d))
    return x, labels


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    return all(len(set(b[a == j])) == 1 for j in set(a)) and len(set(a)) == len(set(b))


def test_spherical_kmeans_recovers_planted_clusters() -> None:
    x, truth = _planted(3, 10)
    labels, mu, cost = cl.spherical_kmeans(x, 3, iters=50, restarts=4, seed=0)
    assert _same_partition(truth, labels)
    assert np.allclose(np.linalg.norm(mu, axis=1), 1.0)
    assert cost < 0.05


def test_scale_invariance_is_what_cosine_means() -> None:
    x, truth = _planted(2, 8)
    scaled = x * np.linspace(0.1, 50, len(x))[:, None]  # cosine k-means ignores vector length
    labels, _, _ = cl.spherical_kmeans(scaled, 2, iters=50, restarts=4, seed=1)
    assert _same_partition(truth, labels)


def test_choose_k_by_silhouette_finds_planted_k_and_fixed_k_is_respected() -> None:
    x, _ = _planted(4, 8, seed=2)
    res = cl.choose_k(x, k=0, k_min=2, k_max=6, iters=50, restarts=3, seed=0)
    assert res.k == 4 and set(res.silhouette) == {2, 3, 4, 5, 6}
    assert cl.choose_k(x, k=2, k_min=2, k_max=6, iters=50, restarts=3, seed=0).k == 2


def test_no_empty_clusters_even_with_duplicates() -> None:
    x = np.vstack([np.tile([1.0, 0, 0], (6, 1)), [[0, 1.0, 0]]])
    labels, _, _ = cl.spherical_kmeans(x, 3, iters=10, restarts=2, seed=0)
    assert set(labels) == {0, 1, 2}


def test_names_and_plot(tmp_path: Path) -> None:
    texts = [
        "reverse the string s",
        "count vowels in a string",
        "sum of a list of numbers",
        "maximum of a list",
        "string palindrome check",
        "list of even numbers",
    ]
    labels = np.array([0, 0, 1, 1, 0, 1])
    names = cl.cluster_names(texts, labels, 2)
    assert len(set(names)) == 2 and all(names)
    x, _ = _planted(2, 3)
    method = cl.plot_clusters(x, labels, names, tmp_path / "c.png", seed=0)
    assert method.startswith("t-SNE")
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
