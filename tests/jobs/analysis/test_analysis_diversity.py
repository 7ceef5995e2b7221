"""δ-diverse selection against brute force and against the plain farthest-first rule."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.errors import ConfigError
from jobs.analysis.diversity import check_selection, delta_select, farthest_first


def unit(rng: np.random.Generator, n: int, d: int, clusters: int = 0) -> np.ndarray:
    """Random unit vectors, optionally around a few cluster centres (structured, like embeddings)."""
    x = rng.normal(size=(n, d))
    if clusters:
        centres = rng.normal(size=(clusters, d)) * 3
        x = centres[rng.integers(0, clusters, n)] + x * 0.5
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def brute_force_ok(x: np.ndarray, diverse: np.ndarray, delta: float) -> tuple[bool, bool]:
    d = np.sqrt(np.square(x[:, None, :].astype(np.float64) - x[None, :, :]).sum(-1))
    c = np.flatnonzero(diverse)
    coverage = bool((d[:, c].min(axis=1) <= delta).all())
    dc = d[np.ix_(c, c)] + np.eye(len(c)) * 10
    return coverage, bool((dc > delta).all())


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 160),
    d=st.sampled_from([2, 3, 8, 32]),
    delta=st.sampled_from([0.05, 0.4, 0.9, 1.5]),
    clusters=st.sampled_from([0, 3]),
    n_cells=st.sampled_from([None, 1, 4, 50]),
    seed=st.integers(0, 2**16),
)
def test_coverage_and_separation_match_brute_force(
    n: int, d: int, delta: float, clusters: int, n_cells: int | None, seed: int
) -> None:
    x = unit(np.random.default_rng(seed), n, d, clusters)
    sel = delta_select(x, delta=delta, seed=seed, n_cells=n_cells, batch_size=16)
    assert brute_force_ok(x, sel.diverse, delta) == (True, True)
    # the reported centre is selected, within δ, and the nearest selected point
    assert sel.diverse[sel.center].all()
    dist = np.linalg.norm(x - x[sel.center], axis=1)
    np.testing.assert_allclose(sel.center_distance, dist, atol=1e-5)
    assert (dist <= delta + 1e-6).all()
    c = np.flatnonzero(sel.diverse)
    nearest = np.linalg.norm(x[:, None, :] - x[None, c, :], axis=-1).min(axis=1)
    np.testing.assert_allclose(sel.center_distance, nearest, atol=1e-5)


@pytest.mark.parametrize(("n", "d", "delta"), [(400, 8, 0.4), (600, 16, 0.9), (300, 3, 0.2)])
def test_scan_in_farthest_first_order_gives_farthest_first_set(n: int, d: int, delta: float) -> None:
    x = unit(np.random.default_rng(n), n, d, clusters=4)
    picks, gaps = farthest_first(x, delta=delta, seed=1)
    assert (gaps[1:] > delta).all() and (np.diff(gaps[1:]) <= 1e-6).all()
    order = np.r_[picks, np.setdiff1d(np.arange(n), picks)]
    sel = delta_select(x, delta=delta, order=order)
    assert set(np.flatnonzero(sel.diverse)) == set(picks.tolist())
    assert np.array_equal(sel.selected, picks)


def test_cell_scan_equals_plain_scan_in_its_order_and_is_seeded() -> None:
    x = unit(np.random.default_rng(7), 3000, 24, clusters=20)
    a = delta_select(x, delta=0.5, seed=3)
    b = delta_select(x, delta=0.5, seed=3)
    plain = delta_select(x, delta=0.5, order=a.order)
    assert np.array_equal(a.diverse, b.diverse) and np.array_equal(a.order, b.order)
    assert np.array_equal(a.diverse, plain.diverse)
    assert check_selection(x, a, delta=0.5) == (True, True)
    assert check_selection(x, a, delta=0.5, sample=500, seed=1) == (True, True)
    other = delta_select(x, delta=0.5, seed=4)
    assert check_selection(x, other, delta=0.5) == (True, True)


def test_duplicates_collapse_to_one_centre() -> None:
    x = np.repeat(unit(np.random.default_rng(0), 5, 8), 20, axis=0)
    sel = delta_select(x, delta=0.01, seed=0)
    assert sel.diverse.sum() == 5


def test_check_selection_catches_a_broken_selection() -> None:
    x = unit(np.random.default_rng(1), 200, 4)
    sel = delta_select(x, delta=0.3)
    broken = type(sel)(sel.diverse.copy(), sel.center, sel.center_distance, sel.order, sel.n_cells)
    broken.diverse[np.flatnonzero(sel.diverse)[0]] = False
    assert check_selection(x, broken, delta=0.3)[0] is False or brute_force_ok(x, broken.diverse, 0.3)[0]
    everything = type(sel)(np.ones(200, bool), sel.center, sel.center_distance, sel.order, sel.n_cells)
    assert check_selection(x, everything, delta=0.3)[1] is False


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"delta": 0.0}, "delta"), ({"order": np.zeros(10, int)}, "order"), ({"batch_size": 0}, "batch_size")],
)
def test_bad_arguments_name_the_parameter(kwargs: dict, name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        delta_select(unit(np.random.default_rng(0), 10, 4), **kwargs)


def test_empty_input() -> None:
    sel = delta_select(np.zeros((0, 4), np.float32))
    assert sel.diverse.size == 0 and sel.center.size == 0


def greedy_reference(x: np.ndarray, order: np.ndarray, delta: float) -> np.ndarray:
    """The greedy δ-net by definition: visit `order`, keep a point unless a kept one is within δ (float64)."""
    x64 = x.astype(np.float64)
    kept: list[int] = []
    for i in order:
        if not kept or np.square(x64[kept] - x64[i]).sum(axis=1).min() > delta**2:
            kept.append(int(i))
    diverse = np.zeros(len(x), dtype=bool)
    diverse[kept] = True
    return diverse


def near_duplicates(
    rng: np.random.Generator, n: int, d: int, share: float, spread: tuple[float, float]
) -> np.ndarray:
    """Anisotropic unit vectors (variance decaying over directions) plus `share` of rewrites of them,
    each moved along the leading directions by an L2 distance drawn from `spread`."""
    scale = np.arange(1, d + 1) ** -0.8
    n_orig = n - int(share * n)
    orig = rng.normal(size=(n_orig, d)) * scale
    orig /= np.linalg.norm(orig, axis=1, keepdims=True)
    step = rng.normal(size=(n - n_orig, d)) * scale
    step /= np.linalg.norm(step, axis=1, keepdims=True)
    dup = orig[rng.integers(0, n_orig, n - n_orig)] + step * rng.uniform(*spread, (n - n_orig, 1))
    x = np.concatenate([orig, dup / np.linalg.norm(dup, axis=1, keepdims=True)])
    return x[rng.permutation(n)].astype(np.float32)


@pytest.mark.parametrize(
    ("kind", "d", "delta"),
    [("random", 8, 0.9), ("random", 48, 1.2), ("clusters", 96, 0.6), ("dups", 64, 0.4), ("dups", 200, 0.4)],
)
def test_scan_equals_the_reference_greedy_net_in_the_same_order(kind: str, d: int, delta: float) -> None:
    """Above 32 dimensions the low view is a true projection, so its bound does the pruning."""
    rng = np.random.default_rng(d)
    if kind == "dups":
        x = near_duplicates(rng, 1200, d, share=0.3, spread=(0.05, 0.45))
    else:
        x = unit(rng, 1200, d, clusters=6 if kind == "clusters" else 0)
    order = rng.permutation(len(x))
    plain = delta_select(x, delta=delta, order=order, batch_size=100)
    assert np.array_equal(plain.diverse, greedy_reference(x, order, delta))
    cells = delta_select(x, delta=delta, seed=5, n_cells=30)
    assert np.array_equal(cells.diverse, greedy_reference(x, cells.order, delta))
    assert brute_force_ok(x, cells.diverse, delta) == (True, True)
    assert 1 < cells.diverse.sum() < len(x)
    assert cells.low_checks > 0 and cells.full_checks > 0


def test_pairs_a_hair_either_side_of_delta_are_decided_exactly() -> None:
    """Rewrites at δ(1 ± 1e-6), moved along the leading direction so the low view sees all of it."""
    rng = np.random.default_rng(3)
    d, delta = 64, 0.4
    base = near_duplicates(rng, 300, d, share=0.0, spread=(0.0, 0.0))
    lead = np.zeros(d)
    lead[0] = 1.0
    tangent = lead - (base.astype(np.float64) @ lead)[:, None] * base
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    chord = delta * (1 + rng.choice([-1e-6, 1e-6], len(base)))
    angle = 2 * np.arcsin(chord / 2)[:, None]
    moved = np.cos(angle) * base + np.sin(angle) * tangent
    x = np.concatenate([base, moved.astype(np.float32)])
    order = np.r_[np.arange(len(base)), len(base) + np.arange(len(base))]
    sel = delta_select(x, delta=delta, order=order)
    assert np.array_equal(sel.diverse, greedy_reference(x, order, delta))
    # the float64 distances decide: some rewrites land just inside δ, some just outside
    gap = np.sqrt(np.square(x[len(base) :].astype(np.float64) - base).sum(axis=1))
    assert (gap <= delta).any() and (gap > delta).any()
