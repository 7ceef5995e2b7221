"""Which sections of a spec the compliance judges lean on when they find a problem.

Each judgement cites the ids of the spec sections its decision rests on (the compliance
stage validates them against the spec's own sections). Counted over the problematic
judgements (non-compliant or ambiguous), a section cited often is a part of the spec that
responses keep running into; counted within frequent non-compliance (every model of a family
fails a scenario, by majority) and within each disagreement bin, it says which parts of the
spec the hard cases turn on.

Every share has its own denominator, the problematic judgements of its group, so a group's
shares sum to the mean number of sections cited per judgement, not to 1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import polars as pl
import pyarrow as pa

from jobs.analysis.agreement import PROBLEMATIC, decided_by_majority
from jobs.analysis.frames import frame
from jobs.spec.sections import Spec

SECTIONS_SCHEMA = pa.schema(
    [
        pa.field("spec", pa.string(), nullable=False),
        pa.field("section_id", pa.string(), nullable=False),
        pa.field("level", pa.int64(), nullable=False),  # 0: the text before the first heading
        pa.field("heading", pa.string(), nullable=False),
        ("parent_id", pa.string()),
        pa.field("text", pa.string(), nullable=False),  # the section's own text, its heading excluded
    ]
)
"""`tables/spec_sections.parquet`: the sections of each spec judged against, in spec order."""

CITATIONS_SCHEMA = pa.schema(
    [
        pa.field("scenario_id", pa.string(), nullable=False),
        pa.field("model", pa.string(), nullable=False),  # the answering model
        pa.field("sample", pa.int64(), nullable=False),
        pa.field("judge", pa.string(), nullable=False),
        pa.field("spec", pa.string(), nullable=False),  # the spec version's label
        pa.field("section_id", pa.string(), nullable=False),
    ]
)
"""`tables/compliance_citations.parquet`: one row per section a valid judgement cites."""

STRESS_SCHEMA = pa.schema(
    [
        pa.field("spec", pa.string(), nullable=False),
        pa.field("group_kind", pa.string(), nullable=False),  # all | frequent_noncompliance | bin
        pa.field("group", pa.string(), nullable=False),  # "all", or a bin label
        ("family", pa.string()),  # null for group_kind all
        pa.field("section_id", pa.string(), nullable=False),
        pa.field("heading", pa.string(), nullable=False),
        pa.field("n_problematic", pa.int64(), nullable=False),  # problematic judgements in the group
        pa.field("cited", pa.int64(), nullable=False),  # ... that cite the section
        ("share", pa.float64()),  # cited / n_problematic
    ]
)
"""`tables/spec_section_stress.parquet`: per spec, group and section, how often the group's
problematic judgements cite the section. Only sections cited at least once have rows."""

KEYS = ["scenario_id", "model", "sample"]
MOST_CITED = 5
"""Sections named in the stage summary."""


def sections_table(label: str, spec: Spec) -> pl.DataFrame:
    """The `SECTIONS_SCHEMA` rows of one spec."""
    return frame(
        [
            {"spec": label, "section_id": s.id, "level": s.level, "heading": s.heading, "parent_id": s.parent_id,
             "text": s.text.strip()}
            for s in spec.sections
        ],
        SECTIONS_SCHEMA,
    )  # fmt: skip


def headings(sections: pl.DataFrame) -> dict[tuple[str, str], str]:
    """(spec, section id) -> heading, from `SECTIONS_SCHEMA` rows."""
    return {(r["spec"], r["section_id"]): r["heading"] for r in sections.iter_rows(named=True)}


def most_cited(stress: pl.DataFrame, n: int = MOST_CITED) -> list[dict[str, object]]:
    """The `n` sections most cited in problematic judgements overall: spec, heading, cited, share."""
    top = (
        stress.filter(pl.col("group_kind") == "all")
        .sort("cited", "section_id", descending=[True, False])
        .head(n)
    )
    return [
        {"spec": r["spec"], "section": r["heading"], "cited": r["cited"], "share": round(r["share"], 4)}
        for r in top.iter_rows(named=True)
    ]


def _cited_in(problematic: pl.DataFrame, citations: pl.DataFrame) -> pl.DataFrame:
    """(spec, section_id, n_problematic, cited) over one group's problematic judgements."""
    n = problematic.group_by("spec").agg(pl.len().cast(pl.Int64).alias("n_problematic"))
    cited = (
        citations.join(problematic, on=[*KEYS, "judge", "spec"], how="semi")
        .unique([*KEYS, "judge", "spec", "section_id"])
        .group_by("spec", "section_id")
        .agg(pl.len().cast(pl.Int64).alias("cited"))
    )
    return cited.join(n, on="spec", how="left")


def section_stress(
    judgements: pl.DataFrame,
    citations: pl.DataFrame,
    verdict_table: pl.DataFrame,
    families: Mapping[str, Sequence[str]],
    groups: pl.DataFrame,
    headings: Mapping[tuple[str, str], str],
) -> pl.DataFrame:
    """The `STRESS_SCHEMA` table.

    Args:
        judgements: one row per judgement: scenario_id, model, sample, judge, spec, decision
            (null where the call or its answer failed).
        citations: `CITATIONS_SCHEMA` rows.
        verdict_table: majority verdicts (`jobs.analysis.agreement.verdicts`) of one spec's
            judgements, which decide which scenarios every model of a family fails.
        families: family name -> its model keys.
        groups: `GROUPS_SCHEMA` rows; the `bin` groups are reported.
        headings: (spec, section id) -> the section's heading.
    """
    problematic = judgements.filter(pl.col("decision").is_in(list(PROBLEMATIC))).select(
        *KEYS, "judge", "spec"
    )

    def group(kind: str, label: str, family: str | None, rows: pl.DataFrame) -> pl.DataFrame:
        return _cited_in(rows, citations).with_columns(
            group_kind=pl.lit(kind), group=pl.lit(label), family=pl.lit(family, dtype=pl.String)
        )

    parts = [group("all", "all", None, problematic)]
    for family, models in families.items():
        mine = problematic.filter(pl.col("model").is_in(list(models)))
        decided = decided_by_majority(verdict_table, models)
        failing = decided.filter(pl.col("bad") == pl.col("n")).select("scenario_id")
        parts.append(
            group("frequent_noncompliance", "all", family, mine.join(failing, on="scenario_id", how="semi"))
        )
        bins = groups.filter((pl.col("group_kind") == "bin") & (pl.col("family") == family))
        for (label,), members in bins.group_by("group", maintain_order=True):
            ids = members.select("scenario_id").unique()
            parts.append(group("bin", str(label), family, mine.join(ids, on="scenario_id", how="semi")))
    names = pl.DataFrame(
        [{"spec": spec, "section_id": sid, "heading": h} for (spec, sid), h in headings.items()],
        schema={"spec": pl.String, "section_id": pl.String, "heading": pl.String},
    )
    out = (
        pl.concat(parts, how="diagonal")
        .join(names, on=["spec", "section_id"], how="left")
        .with_columns(
            heading=pl.coalesce("heading", "section_id"), share=pl.col("cited") / pl.col("n_problematic")
        )
    )
    order = ["spec", "group_kind", "group", "family", "cited", "section_id"]
    descending = [name == "cited" for name in order]
    return out.select([f.name for f in STRESS_SCHEMA]).sort(order, descending=descending, nulls_last=True)
