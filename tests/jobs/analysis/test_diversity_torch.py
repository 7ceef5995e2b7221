"""The torch (GPU) δ-selection against brute force and against the CPU scan, run on CPU torch."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.errors import ConfigError
from jobs.analysis.diversity import delta_select, farthest_first

torch = pytest.importorskip("torch", reason="the torch path needs the embed extra (CI installs it)")

from jobs.analysis.diversity_torch import delta_select_torch, farthest_first_torch  # noqa: E402
from jobs.analysis.torch_device import check_device  # noqa: E402
from tests.jobs.analysis.test_analysis_diversity import brute_force_ok, unit  # noqa: E402


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 150),
    d=st.sampled_from([2, 8, 32]),
    delta=st.sampled_from([0.05, 0.4, 0.9, 1.5]),
    clusters=st.sampled_from([0, 3]),
    batch_size=st.sampled_from([1, 7, 64, 4096]),
    seed=st.integers(0, 2**16),
)
def test_torch_scan_is_a_valid_net_and_equals_the_cpu_scan_in_the_same_order(
    n: int, d: int, delta: float, clusters: int, batch_size: int, seed: int
) -> None:
    x = unit(np.random.default_rng(seed), n, d, clusters)
    sel = delta_select_torch(x, delta=delta, seed=seed, device="cpu", batch_size=batch_size)
    assert brute_force_ok(x, sel.diverse, delta) == (True, True)
    cpu = delta_select(x, delta=delta, order=sel.order, batch_size=16)
    np.testing.assert_array_equal(sel.diverse, cpu.diverse)
    np.testing.assert_array_equal(sel.selected, cpu.selected)
    assert sel.diverse[sel.center].all()
    c = np.flatnonzero(sel.diverse)
    nearest = np.linalg.norm(x[:, None, :] - x[None, c, :], axis=-1).min(axis=1)
    np.testing.assert_allclose(sel.center_distance, nearest, atol=1e-5)


def test_points_exactly_delta_apart_follow_the_cpu_convention() -> None:
    """Chord δ on a circle: float32 GEMMs cannot tell <= δ from > δ; the float64 recheck must."""
    delta = 0.4
    step = 2 * np.arcsin(delta / 2)
    angles = np.arange(40) * step
    x = np.stack([np.cos(angles), np.sin(angles), np.zeros_like(angles)], 1).astype(np.float32)
    order = np.arange(40)
    gpu = delta_select_torch(x, delta=delta, order=order, device="cpu")
    cpu = delta_select(x, delta=delta, order=order)
    np.testing.assert_array_equal(gpu.diverse, cpu.diverse)
    assert brute_force_ok(x, gpu.diverse, delta) == (True, True)


def test_default_order_is_seeded() -> None:
    x = unit(np.random.default_rng(3), 500, 16, clusters=5)
    a = delta_select_torch(x, delta=0.6, seed=4, device="cpu", batch_size=32)
    b = delta_select_torch(x, delta=0.6, seed=4, device="cpu", batch_size=32)
    c = delta_select_torch(x, delta=0.6, seed=5, device="cpu", batch_size=32)
    np.testing.assert_array_equal(a.order, b.order)
    np.testing.assert_array_equal(a.diverse, b.diverse)
    assert not np.array_equal(a.order, c.order)


def test_farthest_first_torch_picks_what_the_numpy_loop_picks() -> None:
    x = unit(np.random.default_rng(9), 700, 24, clusters=6)
    picks, gaps = farthest_first(x, delta=0.5, seed=2)
    t_picks, t_gaps = farthest_first_torch(x, delta=0.5, seed=2, device="cpu")
    np.testing.assert_array_equal(t_picks, picks)
    np.testing.assert_allclose(t_gaps[1:], gaps[1:], atol=1e-5)
    capped, _ = farthest_first_torch(x, delta=0.5, seed=2, device="cpu", max_centers=5, dtype="bfloat16")
    assert len(capped) == 5 and capped[0] == picks[0]


def test_bad_inputs_name_the_problem() -> None:
    x = unit(np.random.default_rng(0), 10, 4)
    with pytest.raises(ConfigError, match="permutation"):
        delta_select_torch(x, order=np.zeros(10, dtype=int), device="cpu")
    with pytest.raises(ConfigError, match="delta"):
        delta_select_torch(x, delta=0, device="cpu")
    with pytest.raises(ConfigError, match="NaN"):
        delta_select_torch(np.full((3, 2), np.nan), device="cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        check_device("cuda")
