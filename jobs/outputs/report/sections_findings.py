"""The report's first section: what the run found, in a few small tables that point to the rest.

Each finding reads the table its own section reads and, when that table is absent, says which
stage has not run yet; the sections below hold the full figures.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from jobs.outputs.report.blocks import Link, Section, Table, clip, num, pct
from jobs.outputs.report.sources import RunSources

TOP_SCENARIOS = 10
"""Highest-disagreement scenarios listed, each a link into the explorer."""
TOP_MODELS = 5
"""Models listed as the most frequent outliers."""
QUERY_CHARS = 120


def findings_section(src: RunSources, explorer: dict[str, Any]) -> Section:
    """Per subset how much disagrees and what was selected; the scenarios that disagree most; the
    models that stand apart most often; who refuses most; how far the judges agree."""
    sec = Section("findings", "Findings", "What this run found; the sections below give every figure.")
    found = [_subsets(src), (_top_scenarios(explorer["scenarios"][:TOP_SCENARIOS]), "")]
    found += [_outliers(src), _refusals(src), _judges(src)]
    for table, missing in found:
        sec.tables += [table] if table is not None else []
        sec.missing += [missing] if missing else []
    return sec


def _subsets(src: RunSources) -> tuple[Table | None, str]:
    dis = src.scan("disagreement")
    if dis is None:
        return None, src.missing("disagreement", "disagreement")
    threshold = float(src.stage_setting("disagreement", "high_threshold", 1.5))
    per = (
        dis.group_by("subset")
        .agg(
            pl.len().alias("n"),
            pl.col("d").is_not_null().sum().alias("scored"),
            pl.col("high").fill_null(False).sum().alias("high"),
        )
        .sort("high", "subset", descending=[True, False])
        .collect()
    )
    picked = src.frame("selections")
    selected = dict(picked.group_by("subset").len().iter_rows()) if picked is not None else {}
    rows = [
        [
            r["subset"],
            num(r["scored"]),
            f"{num(r['high'])} ({pct(r['high'] / r['scored'] if r['scored'] else None)})",
            num(selected.get(r["subset"], 0)) if picked is not None else "not run",
        ]
        for r in per.iter_rows(named=True)
    ]
    return Table(
        f"Where the models disagree: scenarios with D ≥ {threshold}, and those selected",
        ["subset", "scenarios with a D", "high disagreement", "selected (k-center)"],
        rows,
    ), ""


def _top_scenarios(scenarios: list[dict[str, Any]]) -> Table | None:
    if not scenarios:
        return None
    rows = []
    for s in scenarios:
        query = (s.get("query") or "").replace("\n", " ")
        short = clip(query, QUERY_CHARS)
        d = s.get("d_max")
        rows.append(
            [
                "" if d is None else f"{d:.2f}",
                f"{s.get('value1') or '?'} vs {s.get('value2') or '?'}",
                Link(short or s["id"], f"#scenario-{s['id']}"),
            ]
        )
    return Table(
        "The highest-disagreement selected scenarios (open one in the explorer)",
        ["D", "values", "query"],
        rows,
    )


def _outliers(src: RunSources) -> tuple[Table | None, str]:
    counts = src.frame("outlier_counts")
    if counts is None:
        return None, src.missing("disagreement", "outlier_counts")
    top = counts.filter(pl.col("n_outliers") > 0).sort("n_outliers", "model", descending=[True, False])
    rows = [
        [r["model"], num(r["n_outliers"]), pct(r["outlier_rate"])]
        for r in top.head(TOP_MODELS).iter_rows(named=True)
    ]
    caption = "The models that stand apart most often (outlier responses)"
    if not rows:
        caption += ": none, no response stood apart from the others"
    return Table(caption, ["model", "outliers", "of its responses"], rows), ""


def _refusals(src: RunSources) -> tuple[Table | None, str]:
    rates = src.frame("refusal_rates")
    if rates is None:
        return None, src.missing("refusals", "refusal_rates")
    overall = rates.filter(pl.col("topic") == "all").sort("refusal_rate", "model", descending=[True, False])
    rows = [
        [r["model"], pct(r["refusal_rate"]), pct(r["hard_rate"]), num(r["n"])]
        for r in overall.iter_rows(named=True)
    ]
    return Table("Who refuses most", ["model", "refusal", "hard refusal", "responses labelled"], rows), ""


def _judges(src: RunSources) -> tuple[Table | None, str]:
    stats = src.frame("judge_stats")
    if stats is None:
        return None, src.missing("compliance", "judge_stats")
    summary = ((src.manifest.get("stages") or {}).get("compliance") or {}).get("summary") or {}
    kappa = summary.get("fleiss_kappa")
    rows = [["Fleiss' kappa, all judges", "" if kappa is None else f"{kappa:.3f}"]]
    for r in stats.filter(pl.col("metric") == "pairwise_agreement").iter_rows(named=True):
        rows.append([f"{r['judge_a']} and {r['judge_b']} agree", pct(r["value"])])
    for r in stats.filter(pl.col("metric") == "problematic_rate").iter_rows(named=True):
        rows.append([f"{r['judge_a']} calls problematic", pct(r["value"])])
    return Table("How far the compliance judges agree", ["figure", "value"], rows), ""
