"""The flips table of two spec versions against a case worked by hand."""

from __future__ import annotations

import math

import polars as pl
import pytest

from jobs.analysis.spec_versions import FLIPS_SCHEMA, flips_table, pairs_of

# (scenario, model, majority under v1, majority under v2); None: not judged under that version.
CASES = [
    ("s1", "m1", "problematic", "problematic"),  # both
    ("s2", "m1", "ok", "ok"),  # neither
    *((f"s{i}", "m1", "ok", "problematic") for i in range(3, 8)),  # five flips to problematic
    ("s1", "m2", "problematic", "ok"),  # one flip to ok
    ("s2", "m2", "tie", "problematic"),  # undecided under v1: unpaired
    ("s3", "m2", "ok", None),  # judged under v1 only: unpaired
]


def verdict_table() -> pl.DataFrame:
    rows = [
        {"scenario_id": s, "model": m, "sample": 0, "majority": verdict, "spec": spec}
        for s, m, v1, v2 in CASES
        for spec, verdict in (("v1", v1), ("v2", v2))
        if verdict is not None
    ]
    return pl.DataFrame(rows)


def test_versions_pair_each_with_the_next() -> None:
    assert pairs_of(["a", "b", "c"]) == [("a", "b"), ("b", "c")] and pairs_of(["a"]) == []


def test_flips_overall_and_per_family_match_the_hand_count() -> None:
    flips = flips_table(verdict_table(), ["v1", "v2"], {"f": ["m1"], "g": ["m2"]})
    assert flips.schema == pl.Schema(FLIPS_SCHEMA)
    rows = {r["family"]: r for r in flips.iter_rows(named=True)}
    overall, f, g = rows[None], rows["f"], rows["g"]
    assert (overall["n"], overall["both"], overall["neither"], overall["a_only"], overall["b_only"]) == (
        8,
        1,
        1,
        1,
        5,
    )
    assert overall["rate_a"] == 0.25 and overall["rate_b"] == 0.75 and overall["rate_change"] == 0.5
    assert overall["se_rate_change"] == pytest.approx(math.sqrt(6 - 4**2 / 8) / 8)
    # Six flips, one of them to ok: exact two-sided binomial p = 2 * P(X <= 1 | 6, 1/2) = 2 * 7/64.
    assert overall["exact"] and overall["statistic"] == 1 and overall["p_value"] == pytest.approx(14 / 64)
    assert (f["n"], f["b_only"], f["a_only"]) == (7, 5, 0) and f["p_value"] == pytest.approx(2 / 32)
    assert (g["n"], g["a_only"], g["rate_change"], g["p_value"]) == (1, 1, -1.0, 1.0)
