"""Weighted k-center: same picks as the plain greedy, and valid stopping."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.errors import ConfigError
from jobs.analysis.kcenter import weighted_kcenter, weighted_kcenter_reference


def unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 150),
    d=st.sampled_from([2, 5, 16]),
    threshold=st.sampled_from([0.0, 0.3, 0.8, 2.0]),
    k=st.sampled_from([None, 1, 7]),
    round_size=st.sampled_from([1, 8, 1024]),
    seed=st.integers(0, 2**16),
)
def test_matches_plain_greedy_and_is_valid(
    n: int, d: int, threshold: float, k: int | None, round_size: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    x, w = unit(rng, n, d), rng.uniform(0.0, 3.0, n)
    res = weighted_kcenter(x, w, threshold=threshold, k=k, seed=seed, round_size=round_size)
    ref, ref_v = weighted_kcenter_reference(x, w, threshold=threshold, k=k, seed=seed)
    # Distances come from a float32 GEMM, whose error near zero distance is about sqrt(eps)
    # (~3e-4, times a weight up to 3): picks may swap only where the reference has near-ties.
    tol = 2e-3
    np.testing.assert_allclose(res.weighted_distance[1:], ref_v[1:], atol=tol)
    if len(ref) < 2 or np.all(np.abs(np.diff(ref_v[1:])) > tol):
        assert np.array_equal(res.indices, ref)
    else:
        assert len(res.indices) == len(ref) or res.stop == "threshold"
    assert math.isinf(res.weighted_distance[0]) and w[res.indices[0]] == w.max()
    assert (np.diff(res.weighted_distance[1:]) <= 1e-5).all()  # ranks: values never rise
    assert (res.weighted_distance[1:] >= threshold).all()
    assert len(set(res.indices.tolist())) == len(res.indices)
    # brute-force weighted distance of every point to its nearest pick
    dist = np.linalg.norm(x[:, None, :].astype(np.float64) - x[None, res.indices, :], axis=-1).min(axis=1)
    true_wd = w * dist
    assert (true_wd <= res.point_weighted_distance + tol).all()
    assert np.isin(res.center, res.indices).all()
    if res.stop == "threshold":
        assert (true_wd < threshold + tol).all()
    if k is not None and res.stop == "k":
        assert len(res.indices) == k


def test_heavy_isolated_point_is_kept() -> None:
    rng = np.random.default_rng(0)
    x = np.vstack([unit(rng, 1, 3) * 0 + np.array([[1, 0, 0]]), np.tile([[0, 1, 0]], (50, 1))]).astype(
        np.float32
    )
    x[1:] += rng.normal(scale=0.01, size=(50, 3)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    w = np.r_[3.0, np.full(50, 1.5)]
    res = weighted_kcenter(x, w, threshold=0.8)
    assert res.indices[0] == 0 and len(res.indices) == 2


def test_bad_weights_name_the_parameter() -> None:
    with pytest.raises(ConfigError, match="weights"):
        weighted_kcenter(np.zeros((3, 2), np.float32), np.array([1.0, -1.0, 0.0]))
    with pytest.raises(ConfigError, match="k"):
        weighted_kcenter(np.zeros((3, 2), np.float32), np.ones(3), k=0)
