"""Committee threshold choice and recall intervals: hand-worked cases and a brute-force search."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobs.analysis.committee import choose_threshold, recall_interval, threshold_at


def test_hand_worked_threshold() -> None:
    # Four high scenarios (full D >= 1.5) with committee Ds 2.0, 1.2, 0.9, 0.3; two low ones.
    committee = np.array([2.0, 1.2, 0.9, 0.3, 1.0, 0.1])
    full = np.array([2.1, 1.6, 1.5, 1.9, 0.5, 0.2])
    # recall 0.75 needs 3 of the 4: the third largest high committee D, 0.9.
    t = choose_threshold(committee, full, 0.75)
    assert t.threshold == 0.9
    assert (t.hits, t.n_high, t.recall) == (3, 4, 0.75)
    # It sends the three high ones and the low scenario with committee D 1.0.
    assert (t.sent, t.n, t.share_sent) == (4, 6, 4 / 6)
    # recall 0.9 needs all four: down to 0.3, which sends every scenario but the last.
    t = choose_threshold(committee, full, 0.9)
    assert (t.threshold, t.hits, t.sent) == (0.3, 4, 5)
    assert t.recall == 1.0


def test_exact_target_is_not_rounded_up() -> None:
    # 0.9 x 10 is 9.000000000000002 in floats; nine of ten hits is enough.
    committee = np.arange(10, dtype=float)
    full = np.full(10, 2.0)
    t = choose_threshold(committee, full, 0.9)
    assert (t.hits, t.threshold) == (9, 1.0)


def test_missing_committee_d_is_always_sent_and_missing_full_d_ignored() -> None:
    committee = np.array([np.nan, 0.5, 2.0, 0.1])
    full = np.array([2.0, np.nan, 2.0, 0.0])
    t = threshold_at(committee, full, 1.0)
    assert (t.hits, t.n_high, t.sent, t.n) == (2, 2, 2, 3)


def test_no_high_scenario_sends_everything() -> None:
    t = choose_threshold(np.array([0.5, 2.0]), np.array([0.1, 1.0]), 0.9)
    assert t.threshold == 0.0 and t.sent == 2 and t.n_high == 0
    assert math.isnan(t.recall) and (t.recall_low, t.recall_high) == (0.0, 1.0)


def test_clopper_pearson_hand_worked() -> None:
    # Exact bounds for 0 of 10 and 10 of 10: 1 - 0.025 ** (1/10) and its mirror.
    assert recall_interval(0, 10) == pytest.approx((0.0, 1 - 0.025**0.1))
    assert recall_interval(10, 10) == pytest.approx((0.025**0.1, 1.0))
    # 9 of 10: the beta quantiles (from tables: 0.5550, 0.9975).
    low, high = recall_interval(9, 10)
    assert low == pytest.approx(0.5550, abs=1e-4) and high == pytest.approx(0.9975, abs=1e-4)
    with pytest.raises(ValueError, match="target_recall"):
        choose_threshold(np.array([1.0]), np.array([2.0]), 0.0)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.integers(0, 12)),
            st.one_of(st.none(), st.integers(0, 12)),
        ),
        min_size=1,
        max_size=30,
    ),
    st.sampled_from([0.5, 0.8, 0.9, 0.95, 1.0]),
)
def test_matches_brute_force(rows: list[tuple[int | None, int | None]], target: float) -> None:
    # Ds on a quarter grid; None is a missing D.
    committee = np.array([np.nan if c is None else c / 4 for c, _ in rows])
    full = np.array([np.nan if f is None else f / 4 for _, f in rows])
    chosen = choose_threshold(committee, full, target)
    candidates = sorted({0.0, math.inf, *committee[~np.isnan(committee)].tolist()})
    reach = [t for t in candidates if (r := threshold_at(committee, full, t)).n_high and r.recall >= target]
    if not threshold_at(committee, full, 0.0).n_high:
        assert chosen.threshold == 0.0
        return
    best = max(reach)
    assert chosen.threshold == best
    # Nothing cheaper reaches the target: any larger candidate sends fewer and misses it.
    assert all(threshold_at(committee, full, t).recall < target for t in candidates if t > best)
