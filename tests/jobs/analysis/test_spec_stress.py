"""Spec sections under stress, on a hand-worked case."""

from __future__ import annotations

import polars as pl

from jobs.analysis.agreement import GROUPS_SCHEMA, verdicts
from jobs.analysis.spec_stress import CITATIONS_SCHEMA, STRESS_SCHEMA, section_stress

# (scenario, model, judge, decision, cited sections). Family f = models a and b.
# x: a gets 2 of 3 problematic, b 2 of 3 -> both fail by majority: x is frequent non-compliance.
# y: a gets 1 of 3 problematic, b none -> no.
JUDGED = [
    ("x", "a", "j1", "non-compliant", ["s1"]),
    ("x", "a", "j2", "non-compliant", ["s1", "s2", "s1"]),  # s1 twice: counted once
    ("x", "a", "j3", "compliant", ["s3"]),
    ("x", "b", "j1", "ambiguous", ["s2"]),
    ("x", "b", "j2", "non-compliant", ["s1"]),
    ("x", "b", "j3", "compliant", ["s3"]),
    ("y", "a", "j1", "non-compliant", ["s2"]),
    ("y", "a", "j2", "compliant", ["s3"]),
    ("y", "a", "j3", "compliant", ["s3"]),
    ("y", "b", "j1", "compliant", ["s3"]),
    ("y", "b", "j2", "compliant", ["s3"]),
    ("y", "b", "j3", None, []),  # a failed call: no decision, no citations
]


def tables() -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    judgements = pl.DataFrame(
        [
            {"scenario_id": s, "model": m, "sample": 0, "judge": j, "spec": "v1", "decision": d}
            for s, m, j, d, _ in JUDGED
        ]
    )
    citations = pl.DataFrame(
        [
            {"scenario_id": s, "model": m, "sample": 0, "judge": j, "spec": "v1", "section_id": c}
            for s, m, j, _, cited in JUDGED
            for c in cited
        ],
        schema={f.name: pl.String if f.name != "sample" else pl.Int64 for f in CITATIONS_SCHEMA},
    )
    table = verdicts(judgements, judgements.select("scenario_id", "model", "sample"))
    groups = pl.DataFrame(
        [
            {"group_kind": "bin", "group": "[0,1)", "family": "f", "subset": "f", "scenario_id": "y"},
            {"group_kind": "bin", "group": "[1,1.5)", "family": "f", "subset": "f", "scenario_id": "x"},
            {"group_kind": "sample", "group": "random", "family": None, "subset": None, "scenario_id": "x"},
        ],
        schema=GROUPS_SCHEMA,
    )
    return judgements, citations, table, groups


def test_section_stress_counts_each_groups_problematic_judgements_citing_each_section() -> None:
    judgements, citations, table, groups = tables()
    headings = {("v1", "s1"): "One", ("v1", "s2"): "Two", ("v1", "s3"): "Three"}
    out = section_stress(judgements, citations, table, {"f": ["a", "b"]}, groups, headings)
    assert out.columns == [f.name for f in STRESS_SCHEMA]
    got = {
        (r["group_kind"], r["group"], r["section_id"]): (
            r["n_problematic"],
            r["cited"],
            r["share"],
            r["heading"],
        )
        for r in out.iter_rows(named=True)
    }
    assert got == {
        # 5 problematic judgements; s1 cited by x-a-j1, x-a-j2, x-b-j2; s2 by x-a-j2, x-b-j1, y-a-j1.
        ("all", "all", "s1"): (5, 3, 3 / 5, "One"),
        ("all", "all", "s2"): (5, 3, 3 / 5, "Two"),
        # Frequent non-compliance: scenario x only, 4 problematic judgements.
        ("frequent_noncompliance", "all", "s1"): (4, 3, 3 / 4, "One"),
        ("frequent_noncompliance", "all", "s2"): (4, 2, 2 / 4, "Two"),
        ("bin", "[1,1.5)", "s1"): (4, 3, 3 / 4, "One"),
        ("bin", "[1,1.5)", "s2"): (4, 2, 2 / 4, "Two"),
        ("bin", "[0,1)", "s2"): (1, 1, 1.0, "Two"),
    }
    # s3 is cited only by compliant judgements: no row. The family is on every row but "all".
    assert out.filter(pl.col("group_kind") == "all")["family"].is_null().all()
    assert (out.filter(pl.col("group_kind") != "all")["family"] == "f").all()
    # Within a group, the most cited section comes first.
    first = out.filter(pl.col("group_kind") == "frequent_noncompliance")["section_id"].to_list()
    assert first == ["s1", "s2"]


def test_a_section_without_a_heading_is_named_by_its_id_and_no_problem_gives_no_rows() -> None:
    judgements, citations, table, groups = tables()
    out = section_stress(judgements, citations, table, {"f": ["a", "b"]}, groups, {})
    assert set(out["heading"]) == {"s1", "s2"}
    calm = judgements.with_columns(decision=pl.lit("compliant"))
    none = section_stress(calm, citations, verdicts(calm, calm), {"f": ["a", "b"]}, groups, {})
    assert none.is_empty() and none.columns == [f.name for f in STRESS_SCHEMA]
