"""The analysis bench's synthetic data: the realistic generator keeps about 70% at δ = 0.4."""

from __future__ import annotations

import numpy as np

from jobs.analysis.diversity import delta_select
from jobs.bench.data import isometric_lift, realistic_vectors, seed_spectrum


def anisotropic_seeds(rng: np.random.Generator, n: int = 500, d: int = 96) -> np.ndarray:
    """Stand-ins for the real queries' embeddings: a shared mean and a decaying spectrum."""
    v = 0.3 + rng.normal(size=(n, d)) * np.arange(1, d + 1) ** -0.5
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def test_realistic_vectors_keep_about_seventy_percent() -> None:
    rng = np.random.default_rng(0)
    x = realistic_vectors(6_000, anisotropic_seeds(rng), rng)
    assert x.shape == (6_000, 96) and x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    kept = delta_select(x, delta=0.4, seed=0).diverse.mean()
    assert 0.67 <= kept <= 0.74
    # anisotropic: the leading quarter of the directions holds most of the variance
    var, _ = seed_spectrum(x)
    assert var[:16].sum() > 0.5 * var.sum()


def test_rewrite_share_sets_the_kept_share() -> None:
    rng = np.random.default_rng(1)
    seeds = anisotropic_seeds(rng)
    fewer = realistic_vectors(4_000, seeds, rng, rewrite_share=0.1)
    assert 0.87 <= delta_select(fewer, delta=0.4, seed=0).diverse.mean() <= 0.93


def test_isometric_lift_keeps_distances() -> None:
    rng = np.random.default_rng(2)
    x = realistic_vectors(300, anisotropic_seeds(rng), rng)
    y = isometric_lift(x, 512, rng)
    assert y.shape == (300, 512)
    np.testing.assert_allclose(y @ y.T, x @ x.T, atol=1e-5)
