"""The unusable rows of a run's tables, counted and explained from hand-built tables (no Ray)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa

from jobs.engine.rundir import RunDir
from jobs.stages.scenarios import REJECT_SCHEMA, SCENARIO_SCHEMA
from jobs.stages.tables import write_table
from jobs.stages.unusable import REASON_CHARS, explain, unusable_rows


def _write(run: RunDir, name: str, df: pl.DataFrame, schema: pa.Schema) -> None:
    """`df` as table `name`, the columns of `schema` it lacks all null."""
    nulls = [pl.lit(None).alias(c) for c in schema.names if c not in df.columns]
    write_table(run, name, df.with_columns(nulls), schema)


def _run(tmp_path: Path) -> RunDir:
    run = RunDir.open(str(tmp_path / "run"))
    rejects = pl.DataFrame(
        {
            "scenario_id": ["a", "b", "c"],
            "reason": ["no_tag", "no_tag", "call_failed"],
            "detail": [None, None, "http_500"],
        },
        schema={"scenario_id": pl.String, "reason": pl.String, "detail": pl.String},
    )
    _write(run, "scenario_rejects", rejects, REJECT_SCHEMA)
    _write(run, "scenarios", pl.DataFrame({"scenario_id": ["d"]}), SCENARIO_SCHEMA)
    long = "wrong shape: " + "x" * 1000
    rubrics = pl.DataFrame(
        {
            "status": ["ok", "invalid", "invalid", "invalid", "call_failed"],
            "error": [None, long, long, "no JSON object found in the answer", "timeout: no answer"],
        }
    )
    write_table(run, "rubrics", rubrics, pa.schema([("status", pa.string()), ("error", pa.string())]))
    write_table(run, "pairs", pl.DataFrame({"pair_id": ["p"]}), pa.schema([("pair_id", pa.string())]))
    return run


def test_rows_are_counted_by_status_with_their_most_frequent_reasons(tmp_path: Path) -> None:
    run = _run(tmp_path)
    rubrics = unusable_rows(run, "rubrics")
    assert rubrics is not None
    assert (rubrics.rows, rubrics.unusable, rubrics.by_status) == (5, 4, {"invalid": 3, "call_failed": 1})
    (top, n), *rest = rubrics.reasons
    assert n == 2 and len(top) == REASON_CHARS and len(rest) == 2  # cut, most frequent first
    rejects = unusable_rows(run, "scenario_rejects")
    assert rejects is not None
    # Out of every generation: the rejected ones and the scenario kept.
    assert (rejects.rows, rejects.unusable, rejects.by_status) == (4, 3, {"no_tag": 2, "call_failed": 1})
    assert rejects.reasons == [("call_failed: http_500", 1)]  # a bare reason is already in the counts
    assert unusable_rows(run, "pairs") is None  # records no outcome per row
    assert unusable_rows(run, "responses") is None  # absent


def test_explain_says_in_one_line_what_each_table_could_not_give(tmp_path: Path) -> None:
    why = explain(_run(tmp_path), ["rubrics", "responses", "scenario_rejects"])
    assert why.startswith("rubrics: 4 of 5 rows unusable (invalid 3, call_failed 1); first reasons: ")
    assert '"no JSON object found in the answer" (1)' in why
    assert why.endswith(
        "scenario_rejects: 3 of 4 generations rejected (no_tag 2, call_failed 1); "
        'first reasons: "call_failed: http_500" (1)'
    )
    assert explain(_run(tmp_path / "again"), ["pairs"]) == "no upstream table records its rows' outcomes"
