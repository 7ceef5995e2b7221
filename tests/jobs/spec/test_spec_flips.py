"""Paired verdicts under two spec versions: pairing, McNemar's test against hand-worked p-values, citations."""

from __future__ import annotations

import math

import polars as pl
import pytest

from jobs.spec.diff import DIFF_SCHEMA
from jobs.spec.flips import SHIFT_SCHEMA, citation_shift, flip_test, pair_verdicts


def pairs_of(both: int, a_only: int, b_only: int, neither: int) -> pl.DataFrame:
    cells = (
        [(True, True)] * both
        + [(True, False)] * a_only
        + [(False, True)] * b_only
        + [(False, False)] * neither
    )
    return pl.DataFrame(
        cells, schema={"problematic_a": pl.Boolean, "problematic_b": pl.Boolean}, orient="row"
    )


def chi2_1_sf(x: float) -> float:
    """P(chi-square with 1 df > x) = P(|Z| > sqrt(x)) = erfc(sqrt(x / 2))."""
    return math.erfc(math.sqrt(x / 2))


def binomial_two_sided(k: int, n: int) -> float:
    """2 P(X <= k) for X ~ Binomial(n, 1/2), k the smaller count, capped at 1."""
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n)


# --- McNemar ------------------------------------------------------------------------------------


def test_few_flips_take_the_exact_test() -> None:
    # 3 problematic under both, 1 only under A, 7 only under B, 4 under neither: n = 15.
    # 8 flips < 25, so exact: 2 P(X <= 1 | Binomial(8, 1/2)) = 2 (1 + 8) / 256 = 18/256.
    t = flip_test(pairs_of(3, 1, 7, 4))
    assert (t.n, t.both, t.a_only, t.b_only, t.neither) == (15, 3, 1, 7, 4)
    assert t.exact and t.statistic == 1.0
    assert t.p_value == pytest.approx(18 / 256)
    assert (t.rate_a, t.rate_b, t.flip_rate) == pytest.approx((4 / 15, 10 / 15, 8 / 15))
    assert t.se_a == pytest.approx(math.sqrt(4 / 15 * 11 / 15 / 15))
    assert t.se_b == pytest.approx(math.sqrt(10 / 15 * 5 / 15 / 15))
    assert t.se_flip_rate == pytest.approx(math.sqrt(8 / 15 * 7 / 15 / 15))
    # Paired difference (7 - 1) / 15; its SE sqrt((1 + 7) - (7 - 1)^2 / 15) / 15 = sqrt(5.6) / 15.
    assert t.rate_change == pytest.approx(0.4)
    assert t.se_rate_change == pytest.approx(math.sqrt(5.6) / 15)


def test_many_flips_take_the_chi_square_test_with_continuity_correction() -> None:
    # 10 flips to ok, 25 to problematic: 35 >= 25, so chi-square = (|25 - 10| - 1)^2 / 35 = 5.6,
    # p = erfc(sqrt(2.8)) = 0.01796.
    t = flip_test(pairs_of(50, 10, 25, 15))
    assert not t.exact and t.statistic == pytest.approx(5.6)
    assert t.p_value == pytest.approx(chi2_1_sf(5.6)) and t.p_value == pytest.approx(0.01796, abs=1e-5)
    assert t.rate_change == pytest.approx(0.15)


def test_the_test_can_be_chosen() -> None:
    # Exact on 35 flips: 2 P(X <= 10 | Binomial(35, 1/2)).
    exact = flip_test(pairs_of(50, 10, 25, 15), exact=True)
    assert exact.exact and exact.p_value == pytest.approx(binomial_two_sided(10, 35))
    # Chi-square on 8 flips: (|7 - 1| - 1)^2 / 8 = 3.125, p = erfc(1.25) = 0.0771.
    approx = flip_test(pairs_of(3, 1, 7, 4), exact=False)
    assert approx.statistic == pytest.approx(3.125) and approx.p_value == pytest.approx(math.erfc(1.25))


def test_balanced_flips_and_no_flips_give_no_evidence() -> None:
    # 3 each way: 2 (1 + 6 + 15 + 20) / 64 = 84/64, capped at 1.
    assert flip_test(pairs_of(2, 3, 3, 2)).p_value == 1.0
    still = flip_test(pairs_of(4, 0, 0, 6))
    assert (still.p_value, still.flip_rate, still.se_flip_rate, still.rate_change) == (1.0, 0.0, 0.0, 0.0)
    assert flip_test(pairs_of(4, 0, 0, 6), exact=False).p_value == 1.0  # not chi-square's 0/0


def test_no_pairs_give_nan_rates() -> None:
    t = flip_test(pairs_of(0, 0, 0, 0))
    assert t.n == 0 and t.p_value == 1.0
    assert all(
        math.isnan(x) for x in (t.rate_a, t.se_a, t.rate_b, t.flip_rate, t.rate_change, t.se_rate_change)
    )


# --- pairing ------------------------------------------------------------------------------------


def verdicts(rows: list[tuple[str, str, bool | None]]) -> pl.DataFrame:
    return pl.DataFrame(
        rows, schema={"response_id": pl.String, "version": pl.String, "problematic": pl.Boolean}, orient="row"
    )


def test_pairing_keeps_the_units_judged_under_both_versions() -> None:
    v = verdicts([
        ("r2", "old", True), ("r2", "new", False),
        ("r1", "old", False), ("r1", "new", False),
        ("r3", "old", True),  # never judged under new
        ("r4", "old", None), ("r4", "new", True),  # the judge gave no verdict under old
        ("r1", "other", True),  # a third version
    ])  # fmt: skip
    pairs = pair_verdicts(v, version_a="old", version_b="new")
    assert pairs.columns == ["response_id", "problematic_a", "problematic_b"]
    assert pairs.rows() == [("r1", False, False), ("r2", True, False)]


def test_pairing_per_judge_needs_the_judge_in_the_unit() -> None:
    v = pl.DataFrame({
        "response_id": ["r1"] * 4,
        "judge": ["j1", "j2", "j1", "j2"],
        "version": ["old", "old", "new", "new"],
        "problematic": [True, False, True, True],
    })  # fmt: skip
    with pytest.raises(ValueError, match=r"4 rows share their unit \['response_id'\] and version.*`unit`"):
        pair_verdicts(v, version_a="old", version_b="new")
    pairs = pair_verdicts(v, version_a="old", version_b="new", unit=("response_id", "judge"))
    assert pairs.rows() == [("r1", "j1", True, True), ("r1", "j2", False, True)]
    with pytest.raises(ValueError, match=r"verdicts: missing columns \['problematic'\]"):
        pair_verdicts(v.drop("problematic"), version_a="old", version_b="new")


# --- citations ----------------------------------------------------------------------------------


def test_citation_shift_on_a_tiny_example() -> None:
    diff = pl.DataFrame(
        [
            ("rewritten", "x", "x", "X", "X", 0.7),
            ("unchanged", "y", "y", "Y", "Y", 1.0),
            ("renamed", "z_old", "z_new", "Old Z", "New Z", 0.9),
            ("added", None, "w", None, "W", None),
            ("removed", "v", None, "V", None, None),
        ],
        schema=DIFF_SCHEMA,
        orient="row",
    )
    pairs = pl.DataFrame(
        {
            "response_id": ["r1", "r2", "r3", "r4", "r5"],
            "problematic_a": [True, True, False, True, False],
            "problematic_b": [True, False, True, True, False],
        }
    )
    citations = pl.DataFrame(
        [
            ("r1", "old", "x"), ("r1", "new", "x"), ("r1", "new", "y"),
            ("r2", "old", "x"), ("r2", "old", "x"),  # cited twice: counts once
            ("r3", "old", "y"),  # r3 is ok under old: not counted
            ("r3", "new", "x"),
            ("r4", "old", "y"), ("r4", "new", "x"), ("r4", "new", "z_new"),
            ("r6", "new", "x"),  # not a paired unit
            ("r1", "draft", "z_old"),  # another version
        ],
        schema=["response_id", "version", "section_id"],
        orient="row",
    )  # fmt: skip
    # Problematic under old: r1, r2, r4 (3); under new: r1, r3, r4 (3).
    # x: old verdicts of r1, r2 cite it (2/3); new verdicts of r1, r3, r4 (3/3).
    shift = citation_shift(pairs, citations, diff, version_a="old", version_b="new")
    assert shift.schema == pl.Schema(SHIFT_SCHEMA)
    assert shift.rows() == [
        ("rewritten", "x", "x", "X", 3, 2, pytest.approx(2 / 3), 3, 3, 1.0, pytest.approx(1 / 3))
    ]
    # y: old r4 (1/3), new r1 (1/3). z: never under its old id, new r4 under its new id (1/3).
    kept = citation_shift(
        pairs,
        citations,
        diff,
        version_a="old",
        version_b="new",
        statuses=("rewritten", "unchanged", "renamed"),
    )
    assert kept.select("id_a", "cited_a", "cited_b", "share_change").rows() == [
        ("x", 2, 3, pytest.approx(1 / 3)),
        ("y", 1, 1, 0.0),
        ("z_old", 0, 1, pytest.approx(1 / 3)),
    ]
    # Nothing problematic under old: its shares are null, not zero.
    calm = pairs.with_columns(problematic_a=pl.lit(False))
    (row,) = citation_shift(calm, citations, diff, version_a="old", version_b="new").iter_rows(named=True)
    assert (row["n_problematic_a"], row["share_a"], row["share_b"], row["share_change"]) == (
        0,
        None,
        1.0,
        None,
    )
