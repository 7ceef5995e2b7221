"""Disagreement and outliers against hand-computed cases."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import polars as pl
import pytest

from actors.errors import SpecstressError
from jobs.analysis.disagreement import (
    DEFAULT_SUBSETS,
    DISAGREEMENT_SCHEMA,
    MODEL_KEYS,
    DisagreementConfig,
    disagreement,
    subset_counts,
)
from jobs.analysis.outliers import OUTLIER_COUNTS_SCHEMA, OUTLIER_SCHEMA, OutlierConfig, far_counts, outliers


def scores(cells: dict[str, dict[str, tuple[int | None, int | None]]]) -> pl.DataFrame:
    """Long scores from {scenario: {model: (position_value1, position_value2)}}; None = missing."""
    rows = []
    for sid, per_model in cells.items():
        for model, pair in per_model.items():
            for slot, pos in enumerate(pair, start=1):
                if pos is not None:
                    rows.append((sid, model, slot, f"v{slot}", pos, 0.9, "because"))
    cols = ["scenario_id", "model", "value_slot", "value", "position", "confidence", "reasoning"]
    return pl.DataFrame(rows, schema=cols, orient="row")


CASE = scores(
    {
        "s1": {"a": (0, 3), "b": (6, 3), "c": (3, None)},  # v1: 0,6,3 ; v2: 3,3 (c missing)
        "s2": {"a": (1, 1), "b": (2, 5), "c": (3, 0)},  # v1: 1,2,3 ; v2: 1,5,0
        "s3": {"a": (2, None)},  # one model only
    }
)
ABC = {"abc": ("a", "b", "c"), "ab": ("a", "b")}


def row(t: pl.DataFrame, sid: str, subset: str) -> dict:
    return t.filter((pl.col("scenario_id") == sid) & (pl.col("subset") == subset)).to_dicts()[0]


def test_population_std_by_hand() -> None:
    t = disagreement(CASE, DisagreementConfig(subsets=ABC))
    assert t.columns == DISAGREEMENT_SCHEMA.names
    r = row(t, "s1", "abc")
    assert r["std_value1"] == pytest.approx(math.sqrt(6))  # mean 3, deviations -3, 3, 0
    assert r["std_value2"] == 0.0 and r["n_models"] == 2
    assert r["d"] == pytest.approx(math.sqrt(6)) and r["high"] is True and r["bin"] == "[2,2.5)"
    r = row(t, "s2", "abc")
    assert r["std_value1"] == pytest.approx(math.sqrt(2 / 3))
    assert r["std_value2"] == pytest.approx(math.sqrt(14 / 3))  # mean 2, deviations -1, 3, -2
    assert r["bin"] == "[2,2.5)" and r["n_models"] == 3
    r = row(t, "s2", "ab")
    assert r["d"] == pytest.approx(2.0) and r["bin"] == "[2,2.5)"  # v2: 1, 5
    r = row(t, "s3", "abc")  # fewer than min_models positions: no D
    assert r["d"] is None and r["high"] is None and r["bin"] is None and r["n_models"] == 0


def test_sample_std_by_hand() -> None:
    t = disagreement(CASE, DisagreementConfig(subsets=ABC, std="sample"))
    assert row(t, "s1", "abc")["d"] == pytest.approx(3.0)  # sqrt(18 / 2)
    assert row(t, "s1", "abc")["bin"] == "[2.5,3]"
    assert row(t, "s2", "abc")["std_value2"] == pytest.approx(math.sqrt(7))
    assert row(t, "s2", "ab")["d"] == pytest.approx(math.sqrt(8))  # > 3 is possible: last bin
    assert row(t, "s2", "ab")["bin"] == "[2.5,3]"


def test_threshold_and_bins_edges() -> None:
    t = disagreement(
        scores({"x": {"a": (0, 0), "b": (3, 0)}, "y": {"a": (0, 0), "b": (2, 0)}}),
        DisagreementConfig(subsets={"ab": ("a", "b")}, high_threshold=1.5),
    )
    assert row(t, "x", "ab")["d"] == 1.5 and row(t, "x", "ab")["high"] is True  # >= is high
    assert row(t, "x", "ab")["bin"] == "[1.5,2)" and row(t, "y", "ab")["bin"] == "[1,1.5)"
    counts = subset_counts(t).to_dicts()[0]
    assert counts["n_scenarios"] == 2 and counts["n_high"] == 1


def test_default_subsets_use_the_twelve_keys() -> None:
    assert set(DEFAULT_SUBSETS["all"]) == set(MODEL_KEYS) and len(DEFAULT_SUBSETS) == 6
    full = scores({"s": {m: (i % 7, 3) for i, m in enumerate(MODEL_KEYS)}})
    t = disagreement(full)
    assert t["subset"].to_list() == list(DEFAULT_SUBSETS)


def test_duplicate_scores_are_an_error() -> None:
    with pytest.raises(SpecstressError, match="more than once"):
        disagreement(pl.concat([CASE, CASE.head(1)]), DisagreementConfig(subsets=ABC))


def twelve(v1: list[int], v2: list[int | None] | None = None) -> pl.DataFrame:
    v2 = v2 or [3] * len(v1)
    return scores({"s": {f"m{i:02d}": (a, b) for i, (a, b) in enumerate(zip(v1, v2, strict=True))}})


def test_outlier_needs_nine_of_eleven() -> None:
    # m00 at 6, nine others at 0..2 (>= 4 away), two at 3: far from 9 -> outlier
    o = outliers(twelve([6, 0, 1, 2, 0, 1, 2, 0, 1, 2, 3, 3]))
    assert o.rows.columns == OUTLIER_SCHEMA.names and o.counts.columns == OUTLIER_COUNTS_SCHEMA.names
    assert o.rows["model"].to_list() == ["m00"]
    r = o.rows.to_dicts()[0]
    assert (
        r["far_value1"] == 9 and r["required_value1"] == 9 and r["outlier_value1"] and not r["outlier_value2"]
    )
    # only eight far away: not an outlier
    assert outliers(twelve([6, 0, 1, 2, 0, 1, 2, 0, 1, 3, 3, 3])).rows.height == 0


def test_outlier_on_value2_and_missing_models() -> None:
    # value 2: m00 at 0, others at 4..6; m11 has no value-2 score, so N = 11 and 10 others suffice
    v2: list[int | None] = [0, 4, 5, 6, 4, 5, 6, 4, 5, 6, 4, None]
    o = outliers(twelve([3] * 12, v2))
    r = o.rows.to_dicts()[0]
    assert r["model"] == "m00" and r["outlier_value2"] and r["required_value2"] == 9  # ceil(9/11 * 10)
    assert r["far_value2"] == 10
    counts = {c["model"]: c for c in o.counts.to_dicts()}
    assert counts["m00"]["n_outliers"] == 1 and counts["m01"]["n_outliers"] == 0
    assert counts["m11"]["n_responses"] == 1


def test_outlier_share_and_gap_are_configurable() -> None:
    # 3 models: 0, 5, 6 -> with gap 4, model at 0 is far from both others (2 of 2)
    s = scores({"s": {"a": (0, 3), "b": (5, 3), "c": (6, 3)}})
    assert outliers(s, OutlierConfig(share=Fraction(1, 1))).rows["model"].to_list() == ["a"]
    assert outliers(s, OutlierConfig(share=Fraction(1, 2))).rows["model"].to_list() == ["a", "b", "c"]
    assert outliers(s, OutlierConfig(gap=6, share=Fraction(1, 2))).rows["model"].to_list() == ["a", "c"]


@pytest.mark.parametrize("gap", [1, 3, 4, 6])
def test_far_counts_match_pairwise_comparison(gap: int) -> None:
    """The histogram shortcut counts exactly the models a pairwise comparison finds far."""
    rng = np.random.default_rng(gap)
    p = rng.integers(0, 7, (300, 12, 2)).astype(np.float32)
    p[rng.random(p.shape) < 0.1] = np.nan
    present = ~np.isnan(p)
    with np.errstate(invalid="ignore"):
        brute = (np.abs(p[:, :, None, :] - p[:, None, :, :]) >= gap).sum(axis=2)
    got = far_counts(p, present, gap)
    assert (got[present] == brute[present]).all()


def test_positions_off_the_scale_are_an_error() -> None:
    p = np.array([[[7.0, 1.0], [2.0, 3.0], [0.0, 0.0]]], dtype=np.float32)
    with pytest.raises(SpecstressError, match=r"whole numbers 0\.\.6"):
        far_counts(p, ~np.isnan(p), 4)
