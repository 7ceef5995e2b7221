"""Tests for jobs.stages.pairs: determinism, prefix stability, validity, weighting and the parquet writer."""

from __future__ import annotations

import itertools
import time

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.errors import ConfigError
from jobs.stages.pairs import (
    PAIRS_SCHEMA,
    _draw_pairs,
    count_possible_pairs,
    pair_id,
    sample_pairs,
)
from jobs.stages.taxonomy import demo_taxonomy_paths, load_taxonomy
from tests.shared_data import shared_file

# Upper 0.1% point of the chi-square distribution with 3 degrees of freedom.
CHI2_3DF_P001 = 16.266


@pytest.fixture(scope="module")
def demo() -> pl.DataFrame:
    return load_taxonomy(*demo_taxonomy_paths())


def _tiered_values(per_tier: int = 250) -> pl.DataFrame:
    """Synthetic values in four frequency tiers 1:2:3:4, each value its own cluster."""
    names = [f"v{i:04d}" for i in range(4 * per_tier)]
    return pl.DataFrame(
        {
            "value": names,
            "freq": [float(1 + i // per_tier) for i in range(len(names))],
            "l1_id": names,
            "l1_name": names,
            "l2_id": names,
            "l2_name": names,
            "l3_id": ["all"] * len(names),
            "l3_name": ["All"] * len(names),
        }
    )


def _tier_chi2(pairs: pl.DataFrame, expected_share: np.ndarray, per_tier: int = 250) -> float:
    """Pearson chi-square of how often each tier's values appear in the pairs."""
    appearances = pl.concat([pairs["value1"], pairs["value2"]])
    tiers = appearances.str.slice(1).cast(pl.Int64).to_numpy() // per_tier
    observed = np.bincount(tiers, minlength=4)
    expected = expected_share * observed.sum()
    return float(((observed - expected) ** 2 / expected).sum())


@pytest.mark.parametrize("weighting", ["uniform", "frequency"])
@pytest.mark.parametrize("exclude_same", [None, "l1", "l2"])
def test_pairs_are_valid_and_distinct(demo: pl.DataFrame, weighting: str, exclude_same: str | None) -> None:
    pairs = sample_pairs(demo, 3000, seed=7, weighting=weighting, exclude_same=exclude_same)
    assert pairs.columns == PAIRS_SCHEMA.names
    assert pairs["rank"].to_list() == list(range(3000))
    assert (pairs["value1"] != pairs["value2"]).all()
    unordered = {frozenset(p) for p in zip(pairs["value1"], pairs["value2"], strict=True)}
    assert len(unordered) == 3000
    assert pairs["pair_id"].n_unique() == 3000
    assert pairs["pair_id"].to_list() == [pair_id(a, b) for a, b in pairs.select("value1", "value2").rows()]
    ancestry = demo.select("value", "l1_id", "l2_id")
    joined = pairs.join(ancestry, left_on="value1", right_on="value", how="left").join(
        ancestry, left_on="value2", right_on="value", how="left", suffix="_2"
    )
    if exclude_same is not None:
        assert (joined[f"{exclude_same}_id"] != joined[f"{exclude_same}_id_2"]).all()
    else:
        assert (joined["l1_id"] == joined["l1_id_2"]).any()
    names = dict(zip(demo["value"], demo["l2_name"], strict=True))
    assert pairs["value1_l2"].to_list() == [names[v] for v in pairs["value1"]]


def test_same_seed_same_pairs_and_other_seed_other_pairs(demo: pl.DataFrame) -> None:
    first = sample_pairs(demo, 500, seed=11, weighting="frequency", exclude_same="l1")
    again = sample_pairs(demo, 500, seed=11, weighting="frequency", exclude_same="l1")
    other = sample_pairs(demo, 500, seed=12, weighting="frequency", exclude_same="l1")
    assert first.equals(again)
    assert not first.equals(other)


def test_result_does_not_depend_on_row_order(demo: pl.DataFrame) -> None:
    shuffled = demo.sample(fraction=1.0, shuffle=True, seed=3)
    assert not shuffled["value"].equals(demo["value"])
    assert sample_pairs(shuffled, 400, seed=5, weighting="frequency").equals(
        sample_pairs(demo, 400, seed=5, weighting="frequency")
    )


@pytest.mark.parametrize("weighting", ["uniform", "frequency"])
@pytest.mark.parametrize("exclude_same", [None, "l2"])
def test_growing_n_keeps_the_earlier_pairs(
    demo: pl.DataFrame, weighting: str, exclude_same: str | None
) -> None:
    big = sample_pairs(demo, 9000, seed=2024, weighting=weighting, exclude_same=exclude_same)
    for n in (1, 10, 1000, 4096, 8999):
        small = sample_pairs(demo, n, seed=2024, weighting=weighting, exclude_same=exclude_same)
        assert small.equals(big.head(n)), n


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    n=st.integers(0, 300),
    extra=st.integers(1, 3000),
    weighting=st.sampled_from(["uniform", "frequency"]),
    exclude_same=st.sampled_from([None, "l1", "l2"]),
)
def test_prefix_stability_property(
    seed: int, n: int, extra: int, weighting: str, exclude_same: str | None
) -> None:
    values = load_taxonomy(*demo_taxonomy_paths())
    small = sample_pairs(values, n, seed=seed, weighting=weighting, exclude_same=exclude_same)
    big = sample_pairs(values, n + extra, seed=seed, weighting=weighting, exclude_same=exclude_same)
    assert small.equals(big.head(n))


def test_batch_size_does_not_change_the_draw() -> None:
    cumulative = np.cumsum(np.array([5.0, 1.0, 0.5, 3.0, 0.25, 2.0, 1.0, 0.75]))
    groups = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    reference = _draw_pairs(cumulative, groups, 20, np.random.default_rng(9))
    for batch_size in (1, 3, 64):
        drawn = _draw_pairs(cumulative, groups, 20, np.random.default_rng(9), batch_size=batch_size)
        assert all(np.array_equal(x, y) for x, y in zip(reference, drawn, strict=True)), batch_size


def test_every_possible_pair_can_be_drawn(demo: pl.DataFrame) -> None:
    for exclude_same in (None, "l1", "l2"):
        possible = count_possible_pairs(demo, weighting="uniform", exclude_same=exclude_same)
        pairs = sample_pairs(demo, possible, seed=1, weighting="uniform", exclude_same=exclude_same)
        assert pairs["pair_id"].n_unique() == possible


def test_possible_pair_count_matches_brute_force(demo: pl.DataFrame) -> None:
    rows = demo.select("l1_id", "l2_id").rows()
    for exclude_same, column in ((None, None), ("l1", 0), ("l2", 1)):
        brute = sum(1 for a, b in itertools.combinations(rows, 2) if column is None or a[column] != b[column])
        assert count_possible_pairs(demo, weighting="uniform", exclude_same=exclude_same) == brute


def test_too_many_pairs_is_a_config_error(demo: pl.DataFrame) -> None:
    possible = count_possible_pairs(demo, weighting="uniform", exclude_same="l2")
    with pytest.raises(ConfigError, match=rf"n={possible + 1} exceeds the {possible} possible pairs"):
        sample_pairs(demo, possible + 1, seed=0, weighting="uniform", exclude_same="l2")


def test_zero_frequency_values_are_never_drawn(demo: pl.DataFrame) -> None:
    muted = demo["value"].head(100)
    values = demo.with_columns(
        pl.when(pl.col("value").is_in(muted.implode())).then(0.0).otherwise(pl.col("freq")).alias("freq")
    )
    pairs = sample_pairs(values, 1000, seed=4, weighting="frequency")
    assert not pl.concat([pairs["value1"], pairs["value2"]]).is_in(muted.implode()).any()
    assert (
        count_possible_pairs(values, weighting="frequency") == (demo.height - 100) * (demo.height - 101) // 2
    )
    with pytest.raises(ConfigError, match="with freq > 0"):
        sample_pairs(values, 2000, seed=4, weighting="frequency")


def test_frequency_weighting_follows_freq() -> None:
    values = _tiered_values()
    pairs = sample_pairs(values, 4000, seed=123, weighting="frequency")
    weighted_share = np.array([1, 2, 3, 4]) / 10
    assert _tier_chi2(pairs, weighted_share) < CHI2_3DF_P001
    assert _tier_chi2(pairs, np.full(4, 0.25)) > 10 * CHI2_3DF_P001


def test_uniform_weighting_ignores_freq() -> None:
    values = _tiered_values()
    pairs = sample_pairs(values, 4000, seed=123, weighting="uniform")
    assert _tier_chi2(pairs, np.full(4, 0.25)) < CHI2_3DF_P001
    assert _tier_chi2(pairs, np.array([1, 2, 3, 4]) / 10) > 10 * CHI2_3DF_P001


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n": -1}, "n must be a non-negative integer"),
        ({"n": 2.0}, "n must be a non-negative integer"),
        ({"weighting": "zipf"}, "weighting must be"),
        ({"exclude_same": "l3"}, "exclude_same must be"),
    ],
)
def test_bad_arguments_are_config_errors(demo: pl.DataFrame, kwargs: dict[str, object], match: str) -> None:
    arguments: dict[str, object] = {"n": 5, "seed": 0, "weighting": "uniform", **kwargs}
    with pytest.raises(ConfigError, match=match):
        sample_pairs(demo, **arguments)  # type: ignore[arg-type]


def test_bad_values_frame_is_rejected(demo: pl.DataFrame) -> None:
    with pytest.raises(ValueError, match="lacks column"):
        sample_pairs(demo.drop("l2_id"), 5, seed=0, weighting="uniform")
    with pytest.raises(ValueError, match="repeats name"):
        sample_pairs(pl.concat([demo, demo.head(1)]), 5, seed=0, weighting="uniform")
    with pytest.raises(ValueError, match="need a finite number"):
        sample_pairs(demo.with_columns(pl.lit(-1.0).alias("freq")), 5, seed=0, weighting="frequency")


def test_pair_id_is_order_free_and_distinct() -> None:
    assert pair_id("a", "b") == pair_id("b", "a")
    assert len(pair_id("a", "b")) == 16
    assert pair_id("a b", "c") != pair_id("a", "b c")


@pytest.mark.parametrize("weighting", ["uniform", "frequency"])
def test_paper_scale_on_the_real_taxonomy(weighting: str) -> None:
    real_dir = shared_file("data", "values-in-the-wild", "values_tree.csv").parent
    values = load_taxonomy(real_dir / "values_tree.csv", real_dir / "values_frequencies.csv")
    start = time.perf_counter()
    pairs = sample_pairs(values, 150_000, seed=0, weighting=weighting)
    elapsed_s = time.perf_counter() - start
    assert pairs["pair_id"].n_unique() == 150_000
    assert (pairs["value1"] != pairs["value2"]).all()
    assert elapsed_s < 10, f"sampling 150,000 pairs took {elapsed_s:.1f} s"
