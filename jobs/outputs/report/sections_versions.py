"""The report's "Spec versions compared": the same responses judged under each version of the spec.

Read from the compliance stage's `compliance_verdicts` and `compliance_summary` (their `spec`
column; a table without it holds one version), `spec_version_flips` and `spec_section_shift`:
per version the problematic rate and frequent non-compliance with standard errors, from each
version to the next the verdicts that flipped with McNemar's test, and the rewritten sections'
share of the problems before and after, on the same responses.
"""

from __future__ import annotations

import math

import polars as pl

from jobs.outputs.report.blocks import Section, Table, num, pct
from jobs.outputs.report.sources import RunSources

ONE_VERSION = (
    "One version of the spec was judged: nothing to compare (stages.compliance.specs judges "
    "versions side by side)."
)


def _rate(p: float | None, se: float | None) -> str:
    if p is None or math.isnan(p):
        return ""
    return pct(p) if se is None or math.isnan(se) else f"{pct(p)} ± {pct(se)}"


def _per_version(verdicts: pl.LazyFrame) -> Table:
    """Each version's share of problematic majority verdicts among the decided ones."""
    rows = (
        verdicts.filter(pl.col("majority").is_in(["problematic", "ok"]))
        .group_by("spec", maintain_order=True)
        .agg(n=pl.len(), k=(pl.col("majority") == "problematic").sum())
        .collect()
    )
    cells = []
    for spec, n, k in rows.iter_rows():
        p = k / n
        cells.append([spec, f"{n:,}", _rate(p, math.sqrt(p * (1 - p) / n))])
    return Table(
        "Problematic responses per version (majority verdict)", ["version", "responses", "problematic"], cells
    )


def _frequent(summary: pl.DataFrame) -> Table:
    """Frequent non-compliance per version, family and sample."""
    rows = summary.filter(pl.col("group_kind") == "sample").sort(
        "family", "group", "spec", maintain_order=True
    )
    return Table(
        "Frequent non-compliance per version and family (every model of the family problematic)",
        ["family", "sample", "version", "scenarios", "frequent non-compliance"],
        [
            [
                r["family"],
                r["group"],
                r["spec"],
                f"{r['n_scenarios']:,}",
                _rate(r["frequent_noncompliance"], r["se"]),
            ]
            for r in rows.iter_rows(named=True)
        ],
    )


def _flips(flips: pl.DataFrame) -> Table:
    return Table(
        "Verdicts that flipped between versions, on the same responses (McNemar's test)",
        [
            "versions",
            "family",
            "responses",
            "problematic before",
            "problematic after",
            "to ok",
            "to problematic",
            "p",
        ],
        [
            [
                f"{r['spec_a']} → {r['spec_b']}",
                r["family"] or "all",
                f"{r['n']:,}",
                _rate(r["rate_a"], r["se_a"]),
                _rate(r["rate_b"], r["se_b"]),
                f"{r['a_only']:,}",
                f"{r['b_only']:,}",
                f"{num(r['p_value'], 3)} ({'exact' if r['exact'] else 'chi-square'})",
            ]
            for r in flips.iter_rows(named=True)
        ],
    )


def _shift(shift: pl.DataFrame) -> Table:
    return Table(
        "Rewritten sections: the share of problematic responses citing them, before and after",
        ["versions", "section", "before", "after", "change"],
        [
            [
                f"{r['spec_a']} → {r['spec_b']}",
                r["heading"],
                f"{pct(r['share_a'])} ({r['cited_a']}/{r['n_problematic_a']})",
                f"{pct(r['share_b'])} ({r['cited_b']}/{r['n_problematic_b']})",
                "" if r["share_change"] is None else f"{100 * r['share_change']:+.1f} points",
            ]
            for r in shift.sort(
                "spec_a", "spec_b", "share_change", descending=[False, False, True]
            ).iter_rows(named=True)
        ],
    )


def spec_versions_section(src: RunSources) -> Section:
    sec = Section(
        "spec-versions",
        "Spec versions compared",
        "The same responses judged against each version of the spec: how often each version finds a "
        "problem, which verdicts flipped from one version to the next, and whether the sections a "
        "revision rewrote draw more or fewer of the problems after it.",
    )
    flips = src.frame("spec_version_flips")
    if flips is None or flips.is_empty():
        sec.notes.append(ONE_VERSION)
        return sec
    verdicts, summary, shift = (
        src.scan("compliance_verdicts"),
        src.frame("compliance_summary"),
        src.frame("spec_section_shift"),
    )
    if verdicts is not None:
        sec.tables.append(_per_version(verdicts))
    if summary is not None:
        sec.tables.append(_frequent(summary))
    sec.tables.append(_flips(flips))
    if shift is not None and shift.height:
        sec.tables.append(_shift(shift))
    return sec
