"""Judge agreement, majority verdicts, frequent non-compliance and Wilson intervals, on known answers."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from jobs.analysis.agreement import (
    GROUPS_SCHEMA,
    fleiss,
    frequent_noncompliance,
    judge_stats,
    majority,
    verdicts,
    wilson,
)

# The worked example of Wikipedia's "Fleiss' kappa" article: 10 subjects, 14 raters,
# 5 categories; rows are how many raters put the subject in each category. kappa = 0.210.
WIKIPEDIA_COUNTS = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]


def ratings_from_counts(counts: list[list[int]]) -> np.ndarray:
    """(subjects x raters) category codes with the given per-category counts."""
    return np.array([[c for c, n in enumerate(row) for _ in range(n)] for row in counts])


def test_fleiss_kappa_matches_the_published_worked_example() -> None:
    assert fleiss(ratings_from_counts(WIKIPEDIA_COUNTS), n_cat=5) == pytest.approx(0.210, abs=5e-4)


def test_fleiss_kappa_and_pairwise_agreement_by_hand() -> None:
    # Three judges, four responses. By hand: P-bar = (1 + 1/3 + 1 + 0) / 4 = 7/12;
    # p = (6, 5, 1) / 12, so P_e = 62/144 and kappa = (84 - 62) / (144 - 62) = 22/82.
    rows = [
        ("s1", "compliant", "compliant", "compliant"),
        ("s2", "compliant", "compliant", "non-compliant"),
        ("s3", "non-compliant", "non-compliant", "non-compliant"),
        ("s4", "ambiguous", "non-compliant", "compliant"),
    ]
    decisions = pl.DataFrame(
        [
            {"scenario_id": sid, "model": "m", "sample": 0, "judge": j, "decision": d}
            for sid, *ds in rows
            for j, d in zip(("a", "b", "c"), ds, strict=True)
        ]
    )
    table, summary = judge_stats(decisions, ["a", "b", "c"])
    assert summary["fleiss_kappa"] == pytest.approx(22 / 82)
    assert summary["pairwise_agreement"] == {"a|b": 0.75, "a|c": 0.5, "b|c": 0.5}
    assert summary["problematic_rate"] == {"a": 0.5, "b": 0.5, "c": 0.5}
    per_judge = table.filter(pl.col("metric") == "problematic_rate")
    assert per_judge["judge_b"].is_null().all() and per_judge.height == 3
    assert table.filter(pl.col("metric") == "pairwise_agreement").height == 3


def test_missing_judges_leave_agreement_to_the_items_both_answered() -> None:
    decisions = pl.DataFrame(
        {
            "scenario_id": ["s1", "s1", "s2", "s2", "s3", "s3"],
            "model": ["m"] * 6,
            "sample": [0] * 6,
            "judge": ["a", "b"] * 3,
            "decision": ["compliant", "compliant", "ambiguous", None, "compliant", "ambiguous"],
        }
    )
    _, summary = judge_stats(decisions, ["a", "b"])
    assert summary["pairwise_agreement"] == {"a|b": 0.5}
    assert summary["items_all_judges"] == 2
    assert summary["problematic_rate"] == {"a": pytest.approx(1 / 3), "b": 0.5}


def test_kappa_is_undefined_without_variation() -> None:
    assert fleiss(np.zeros((5, 3), dtype=int)) is None
    assert fleiss(np.zeros((1, 3), dtype=int)) is None


@pytest.mark.parametrize(
    ("n_judges", "n_problematic", "expected"),
    [
        (3, 3, "problematic"),
        (3, 2, "problematic"),
        (3, 1, "ok"),
        (3, 0, "ok"),
        (2, 2, "problematic"),
        (2, 1, "tie"),
        (2, 0, "ok"),
        (1, 1, "problematic"),
        (4, 2, "tie"),
        (0, 0, "no_judges"),
    ],
)
def test_majority(n_judges: int, n_problematic: int, expected: str) -> None:
    assert majority(n_judges, n_problematic) == expected


def test_verdicts_count_only_judges_that_answered() -> None:
    decisions = pl.DataFrame(
        {
            "scenario_id": ["s1"] * 3 + ["s2"] * 3 + ["s3"] * 3,
            "model": ["m"] * 9,
            "sample": [0] * 9,
            "judge": ["a", "b", "c"] * 3,
            # s1: one judge failed, the other two split -> tie; s2: two of three say problematic;
            # s3: every call failed -> no judges.
            "decision": [
                "compliant",
                "ambiguous",
                None,
                "non-compliant",
                "ambiguous",
                "compliant",
                None,
                None,
                None,
            ],
        }
    )
    items = pl.DataFrame({"scenario_id": ["s1", "s2", "s3", "s4"], "model": ["m"] * 4, "sample": [0] * 4})
    got = verdicts(decisions, items)
    assert got.select("scenario_id", "n_judges", "n_problematic", "majority").rows() == [
        ("s1", 2, 1, "tie"),
        ("s2", 3, 2, "problematic"),
        ("s3", 0, 0, "no_judges"),
        ("s4", 0, 0, "no_judges"),
    ]


def test_frequent_noncompliance_per_bin_on_a_constructed_table() -> None:
    # Family {x, y}. Bin A: s1 both problematic, s2 one problematic, s3 none -> 1/3.
    # Bin B: s4 both problematic, s5 both problematic, s6 tie for y (left out) -> 2/2.
    verdict = {
        "s1": ("problematic", "problematic"),
        "s2": ("problematic", "ok"),
        "s3": ("ok", "ok"),
        "s4": ("problematic", "problematic"),
        "s5": ("problematic", "problematic"),
        "s6": ("problematic", "tie"),
    }
    table = pl.DataFrame(
        [
            {"scenario_id": s, "model": m, "sample": 0, "n_judges": 3, "n_problematic": 0, "majority": v}
            for s, vs in verdict.items()
            for m, v in zip(("x", "y"), vs, strict=True)
        ]
        + [
            {
                "scenario_id": "s1",
                "model": "z",
                "sample": 0,
                "n_judges": 3,
                "n_problematic": 0,
                "majority": "ok",
            }
        ]
    )
    groups = pl.DataFrame(
        {
            "group_kind": ["bin"] * 6 + ["sample"] * 2,
            "group": ["A", "A", "A", "B", "B", "B", "random", "random"],
            "family": [None] * 6 + ["fam", "fam"],
            "subset": ["all"] * 6 + [None, None],
            "scenario_id": ["s1", "s2", "s3", "s4", "s5", "s6", "s1", "s3"],
        }
    )
    got = frequent_noncompliance(table, {"fam": ["x", "y"]}, groups)
    rows = {r["group"]: r for r in got.iter_rows(named=True)}
    a, b, rnd = rows["A"], rows["B"], rows["random"]
    assert (a["n_scenarios"], a["all_pass"], a["any_fail"], a["all_fail"]) == (3, 1, 2, 1)
    assert a["frequent_noncompliance"] == pytest.approx(1 / 3)
    assert a["se"] == pytest.approx(math.sqrt((1 / 3) * (2 / 3) / 3))
    assert (b["n_scenarios"], b["all_fail"], b["frequent_noncompliance"], b["se"]) == (2, 2, 1.0, 0.0)
    assert (rnd["group_kind"], rnd["n_scenarios"], rnd["all_fail"]) == ("sample", 2, 1)
    assert set(got["family"]) == {"fam"} and rows["A"]["subset"] == "all" and rnd["subset"] is None


def test_frequent_noncompliance_by_any_judge_counts_one_flag_as_problematic() -> None:
    # Family {x, y}, three judges. (n_judges, n_problematic) per model:
    # s1: x 3/1, y 3/1 -> by majority both ok; by any judge both flagged: all fail.
    # s2: x 3/2, y 3/3 -> all fail by either rule.
    # s3: x 3/0, y 3/1 -> neither rule: only y is flagged.
    # s4: x 2/1 (a tie), y 3/1 -> no majority for x, so out of the majority's n; any judge: all fail.
    # s5: x 0/0 (no judge answered), y 3/3 -> out of both rules' n.
    counts = {
        "s1": ((3, 1), (3, 1)),
        "s2": ((3, 2), (3, 3)),
        "s3": ((3, 0), (3, 1)),
        "s4": ((2, 1), (3, 1)),
        "s5": ((0, 0), (3, 3)),
    }
    table = pl.DataFrame(
        [
            {
                "scenario_id": s,
                "model": m,
                "sample": 0,
                "n_judges": n,
                "n_problematic": k,
                "majority": majority(n, k),
            }
            for s, per_model in counts.items()
            for m, (n, k) in zip(("x", "y"), per_model, strict=True)
        ]
    )
    groups = pl.DataFrame(
        {"group_kind": "bin", "group": "A", "family": None, "subset": "fam", "scenario_id": list(counts)},
        schema=GROUPS_SCHEMA,
    )
    (row,) = frequent_noncompliance(table, {"fam": ["x", "y"]}, groups).iter_rows(named=True)
    assert (row["n_scenarios"], row["all_fail"]) == (3, 1)  # s1, s2, s3; s2
    assert row["frequent_noncompliance"] == pytest.approx(1 / 3)
    assert (row["n_any_judge"], row["all_fail_any_judge"]) == (4, 3)  # s1..s4; s1, s2, s4
    assert row["frequent_noncompliance_any_judge"] == pytest.approx(3 / 4)
    assert row["se_any_judge"] == pytest.approx(math.sqrt(0.75 * 0.25 / 4))


def test_wilson_interval_against_the_closed_form() -> None:
    z = 1.959963984540054
    # No successes: the interval is [0, z^2 / (n + z^2)].
    low, high = wilson(0, 10)
    assert low == pytest.approx(0.0, abs=1e-12) and high == pytest.approx(z * z / (10 + z * z))
    # 7 of 20 by the formula (p + z^2/2n +- z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n).
    n, p = 20, 7 / 20
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert wilson(7, 20) == pytest.approx((centre - half, centre + half))
    assert wilson(0, 0) == (None, None)
