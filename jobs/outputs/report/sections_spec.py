"""The report's "Spec sections under stress": the parts of the spec the judges cite when they find a problem.

Read from the compliance stage's `spec_section_stress`, `spec_sections` and
`compliance_citations` tables: the sections most cited in problematic judgements, each with
an excerpt of its text, its share in frequent non-compliance, and links to the explorer's
scenarios where a problematic judgement cited it; then, per disagreement bin, the sections
the bin's problems cite most.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from jobs.analysis.agreement import PROBLEMATIC
from jobs.outputs.report.blocks import Link, Section, Table, clip, pct
from jobs.outputs.report.sources import RunSources

TOP_SECTIONS = 8
"""Sections in the main table, most cited first."""
PER_BIN = 3
"""Sections named per disagreement bin."""
EXCERPT_CHARS = 160


def excerpt(text: str | None) -> str:
    return clip(" ".join((text or "").split()), EXCERPT_CHARS)


def _linked(src: RunSources, shown: list[str]) -> dict[tuple[str, str], str]:
    """(spec, section) -> the explorer scenario whose problematic judgements cite the section most
    (ties: the one listed first, of higher disagreement)."""
    citations, judged = src.scan("compliance_citations"), src.scan("compliance")
    if citations is None or judged is None or not shown:
        return {}
    rank = pl.LazyFrame({"scenario_id": shown, "rank": range(len(shown))})
    problematic = judged.filter(pl.col("decision").is_in(list(PROBLEMATIC)))
    rows = (
        citations.join(rank, on="scenario_id")
        .join(problematic, on=["scenario_id", "model", "sample", "judge"], how="semi")
        .group_by("spec", "section_id", "scenario_id", "rank")
        .len("n")
        .sort(["n", "rank"], descending=[True, False])
        .group_by("spec", "section_id", maintain_order=True)
        .agg(pl.col("scenario_id").first())
        .collect()
    )
    return {(spec, section): scenario for spec, section, scenario in rows.iter_rows()}


def spec_sections_section(src: RunSources, explorer: dict[str, Any]) -> Section:
    sec = Section(
        "spec-sections",
        "Spec sections under stress",
        "The spec sections the compliance judges cite when they call a response problematic. A section "
        "cited often is a part of the spec that responses keep running into: a place to read first when "
        "revising. Shares are of the group's problematic judgements; a judgement may cite several sections.",
    )
    stress, sections = src.frame("spec_section_stress"), src.frame("spec_sections")
    if stress is None or sections is None:
        sec.missing.append(src.missing("compliance", "spec_section_stress"))
        return sec
    if stress.is_empty():
        sec.notes.append(
            "No problematic judgement cites a section (the judges cite sections when "
            "stages.compliance.cite_sections is on, the default for a new run)."
        )
        return sec
    text = {(r["spec"], r["section_id"]): r["text"] for r in sections.iter_rows(named=True)}
    overall = stress.filter(pl.col("group_kind") == "all").head(TOP_SECTIONS)
    frequent = {
        (r["spec"], r["section_id"], r["family"]): r
        for r in stress.filter(pl.col("group_kind") == "frequent_noncompliance").iter_rows(named=True)
    }
    families = sorted({f for _, _, f in frequent})
    links = _linked(src, [s["id"] for s in explorer.get("scenarios", [])])
    rows: list[list[str | Link]] = []
    for r in overall.iter_rows(named=True):
        key = (r["spec"], r["section_id"])
        shares = []
        for fam in families:
            hit = frequent.get((*key, fam))
            shares.append(f"{pct(hit['share'])} ({hit['cited']}/{hit['n_problematic']})" if hit else "0")
        cells: list[str | Link] = [
            r["heading"],
            excerpt(text.get(key)),
            f"{pct(r['share'])} ({r['cited']}/{r['n_problematic']})",
            *shares,
        ]
        found = links.get(key)
        cells.append(Link(found, f"#scenario-{found}") if found else "")
        rows.append(cells)
    specs = sorted(set(overall["spec"]))
    sec.tables.append(
        Table(
            f"The sections most cited in problematic judgements (spec {', '.join(specs)})",
            [
                "section",
                "excerpt",
                "of problematic judgements",
                *[f"in frequent non-compliance ({fam})" for fam in families],
                "a scenario in the explorer",
            ],
            rows,
        )
    )
    bins = stress.filter(pl.col("group_kind") == "bin")
    if bins.height:
        per_bin = bins.group_by("family", "group", maintain_order=True).head(PER_BIN)
        sec.tables.append(
            Table(
                "Per disagreement bin: the sections its problematic judgements cite most",
                ["family", "bin", "section", "share"],
                [
                    [
                        r["family"],
                        r["group"],
                        r["heading"],
                        f"{pct(r['share'])} ({r['cited']}/{r['n_problematic']})",
                    ]
                    for r in per_bin.sort("family", "group", maintain_order=True).iter_rows(named=True)
                ],
            )
        )
    return sec
