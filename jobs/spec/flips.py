"""Verdicts on the same responses under two versions of a spec: the flips, and the sections behind them.

A unit is what carries one verdict per version: a response judged by one judge
(`unit=("response_id", "judge")`), or a response's majority verdict (`("response_id",)`).
A verdict is a boolean, problematic or not (`jobs.analysis.agreement` says which
decisions are problematic). Both versions judge the same units, so the two verdicts of a
unit are paired and McNemar's test asks whether version B makes verdicts problematic more
or less often than A: only the discordant units (the flips) carry that information.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl
from statsmodels.stats.contingency_tables import mcnemar

EXACT_BELOW = 25
"""Fewer flips than this: McNemar's exact (binomial) test; from here on the chi-square one.

The chi-square approximation wants about 25 discordant pairs or more (Agresti, *Categorical
Data Analysis*, §10.1); the exact test holds at any size but is conservative."""

SHIFT_SCHEMA: dict[str, pl.DataType] = {
    "status": pl.String(),  # the diff's status of the section
    "id_a": pl.String(),
    "id_b": pl.String(),
    "heading": pl.String(),  # the heading under B
    "n_problematic_a": pl.Int64(),  # paired units problematic under A
    "cited_a": pl.Int64(),  # ... of them whose verdict under A cites id_a
    "share_a": pl.Float64(),  # cited_a / n_problematic_a; null when that is 0
    "n_problematic_b": pl.Int64(),
    "cited_b": pl.Int64(),
    "share_b": pl.Float64(),
    "share_change": pl.Float64(),  # share_b - share_a
}
"""`citation_shift`: one row per section kept in both versions, in the diff's order."""


@dataclass(frozen=True)
class FlipTest:
    """Paired verdicts counted, their rates with binomial standard errors, and McNemar's test.

    Rates are shares of the n paired units; a rate of no units is NaN.
    """

    n: int
    both: int  # problematic under A and under B
    neither: int
    a_only: int  # problematic under A only: flipped to ok under B
    b_only: int  # problematic under B only: flipped to problematic
    rate_a: float  # problematic under A: (both + a_only) / n
    se_a: float
    rate_b: float
    se_b: float
    flip_rate: float  # (a_only + b_only) / n
    se_flip_rate: float
    rate_change: float  # rate_b - rate_a = (b_only - a_only) / n
    se_rate_change: float  # sqrt((a_only + b_only) - (b_only - a_only)^2 / n) / n, for paired units
    exact: bool  # whether the p-value is the exact binomial one
    statistic: float  # exact: min(a_only, b_only); chi-square: (|b - a| - 1)^2 / (a + b)
    p_value: float  # two-sided


def pair_verdicts(
    verdicts: pl.DataFrame, *, version_a: str, version_b: str, unit: Sequence[str] = ("response_id",)
) -> pl.DataFrame:
    """The units with a verdict under both versions: columns `*unit, problematic_a, problematic_b`.

    Args:
        verdicts: columns `*unit`, `version` (string) and `problematic` (boolean, null
            where the judge gave none); other columns are ignored.
        version_a, version_b: the two values of `version` to pair.
        unit: the columns that identify what carries one verdict per version.

    Raises:
        ValueError: a column is missing, or a unit has two verdicts under one version
            (the judge is probably missing from `unit`).
    """
    keys = list(unit)
    _require(verdicts, "verdicts", [*keys, "version", "problematic"])
    v = verdicts.select(*keys, "version", "problematic").filter(pl.col("problematic").is_not_null())
    doubled = v.filter(pl.struct(*keys, "version").is_duplicated())
    if doubled.height:
        raise ValueError(
            f"verdicts: {doubled.height} rows share their unit {keys} and version with another, "
            f"first {doubled.row(0, named=True)}; add the column that tells them apart to `unit`"
        )

    def side(version: str, column: str) -> pl.DataFrame:
        return v.filter(pl.col("version") == version).select(*keys, pl.col("problematic").alias(column))

    return side(version_a, "problematic_a").join(side(version_b, "problematic_b"), on=keys).sort(keys)


def flip_test(pairs: pl.DataFrame, *, exact: bool | None = None) -> FlipTest:
    """McNemar's test on `pair_verdicts`' output, with the counts and rates behind it.

    Args:
        pairs: boolean columns `problematic_a` and `problematic_b`, one row per unit.
        exact: the exact binomial test (True) or chi-square with continuity correction
            (False); None picks exact when there are fewer than `EXACT_BELOW` flips.
    """
    _require(pairs, "pairs", ["problematic_a", "problematic_b"])
    a, b = pl.col("problematic_a"), pl.col("problematic_b")
    counts = pairs.select(
        both=(a & b).sum(), neither=(~a & ~b).sum(), a_only=(a & ~b).sum(), b_only=(~a & b).sum()
    ).row(0, named=True)
    both, neither, a_only, b_only = (int(counts[k]) for k in ("both", "neither", "a_only", "b_only"))
    n = both + neither + a_only + b_only
    flips = a_only + b_only
    use_exact = flips < EXACT_BELOW if exact is None else exact
    statistic, p_value = 0.0, 1.0  # no flips, no evidence (and chi-square would be 0/0)
    if flips:
        test = mcnemar([[both, a_only], [b_only, neither]], exact=use_exact, correction=True)
        statistic, p_value = float(test.statistic), float(test.pvalue)
    rate_a, se_a = _rate(both + a_only, n)
    rate_b, se_b = _rate(both + b_only, n)
    flip_rate, se_flip_rate = _rate(flips, n)
    return FlipTest(
        n=n,
        both=both,
        neither=neither,
        a_only=a_only,
        b_only=b_only,
        rate_a=rate_a,
        se_a=se_a,
        rate_b=rate_b,
        se_b=se_b,
        flip_rate=flip_rate,
        se_flip_rate=se_flip_rate,
        rate_change=(b_only - a_only) / n if n else math.nan,
        se_rate_change=math.sqrt(max(flips - (b_only - a_only) ** 2 / n, 0.0)) / n if n else math.nan,
        exact=use_exact,
        statistic=statistic,
        p_value=p_value,
    )


def citation_shift(
    pairs: pl.DataFrame,
    citations: pl.DataFrame,
    diff: pl.DataFrame,
    *,
    version_a: str,
    version_b: str,
    unit: Sequence[str] = ("response_id",),
    statuses: Sequence[str] = ("rewritten",),
) -> pl.DataFrame:
    """How often problematic verdicts cite each section under A and under B, on the same units.

    A section that draws a larger share of the problematic verdicts after it was rewritten
    is one the revision put under stress. Each section of the diff whose status is in
    `statuses` (and that exists in both versions) gets a row of `SHIFT_SCHEMA`: under A,
    the share of the units problematic under A whose A verdict cites its id under A; under
    B likewise with its id under B (the same id unless it was moved or renamed).

    Args:
        pairs: `pair_verdicts`' output: `*unit, problematic_a, problematic_b`.
        citations: columns `*unit, version, section_id`, one row per section a verdict
            cites; rows of other versions or of units not in `pairs` are ignored.
        diff: `jobs.spec.diff.diff_sections(spec_a, spec_b)`.
        version_a, version_b: the values of `citations.version` for A and B.
        unit: as for `pair_verdicts`.
        statuses: the diff statuses to report (any of unchanged, rewritten, moved, renamed).
    """
    keys = list(unit)
    _require(pairs, "pairs", [*keys, "problematic_a", "problematic_b"])
    _require(citations, "citations", [*keys, "version", "section_id"])

    def cited(version: str, problematic: str, id_col: str) -> tuple[int, pl.DataFrame]:
        units = pairs.filter(pl.col(problematic)).select(keys)
        counts = (
            citations.filter(pl.col("version") == version)
            .select(*keys, pl.col("section_id").alias(id_col))
            .unique()
            .join(units, on=keys, how="semi")
            .group_by(id_col)
            .len("cited")
        )
        return units.height, counts

    n_a, cited_a = cited(version_a, "problematic_a", "id_a")
    n_b, cited_b = cited(version_b, "problematic_b", "id_b")
    return (
        diff.filter(
            pl.col("status").is_in(list(statuses))
            & pl.col("id_a").is_not_null()
            & pl.col("id_b").is_not_null()
        )
        .select("status", "id_a", "id_b", heading=pl.col("heading_b"))
        .join(cited_a.rename({"cited": "cited_a"}), on="id_a", how="left", maintain_order="left")
        .join(cited_b.rename({"cited": "cited_b"}), on="id_b", how="left", maintain_order="left")
        .with_columns(
            n_problematic_a=pl.lit(n_a, pl.Int64),
            cited_a=pl.col("cited_a").fill_null(0).cast(pl.Int64),
            n_problematic_b=pl.lit(n_b, pl.Int64),
            cited_b=pl.col("cited_b").fill_null(0).cast(pl.Int64),
        )
        .with_columns(share_a=_share("cited_a", n_a), share_b=_share("cited_b", n_b))
        .with_columns(share_change=pl.col("share_b") - pl.col("share_a"))
        .select(list(SHIFT_SCHEMA))
        .cast(SHIFT_SCHEMA)
    )


def _rate(k: int, n: int) -> tuple[float, float]:
    """k / n and its binomial standard error sqrt(p(1-p)/n); NaN for no units."""
    if not n:
        return math.nan, math.nan
    p = k / n
    return p, math.sqrt(p * (1 - p) / n)


def _share(column: str, n: int) -> pl.Expr:
    """`column` / n, or null when n is 0."""
    return pl.col(column) / n if n else pl.lit(None, pl.Float64)


def _require(frame: pl.DataFrame, name: str, columns: list[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name}: missing columns {missing} (has {frame.columns})")
