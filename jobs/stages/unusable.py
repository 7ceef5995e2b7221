"""The rows a stage wrote that later stages cannot use, and why: the account a real model needs.

A stage never drops a row it could not use: a rejected generation goes to
`scenario_rejects` with its reason, and a response, rubric, score or label that failed keeps
its row with a `status` other than ok and an `error`. This module counts them per table and
keeps the first few reasons, for three readers: the report, `specstress status`, and a stage
that finds nothing valid upstream and must say why in terms of those rows (`NothingValid`).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
import pyarrow.parquet as pq

from jobs.engine.rundir import RunDir
from jobs.stages.streaming import scan_table

REJECTS = {"scenario_rejects": "scenarios"}
"""Rejects table -> the table of the rows its stage kept."""
REASONS_SHOWN = 3
"""Distinct reasons kept per table, the most frequent first."""
REASON_CHARS = 200
"""A reason longer than this is cut (a validation error can quote a whole answer)."""


class NothingValid(Exception):
    """A stage's inputs hold no row it can use.

    The driver records the stage as skipped with this message, skips the stages that read
    its tables, and runs the others: the run's config is not at fault, the rows upstream are,
    so the message says how many of them were unusable and why (`explain`).
    """


@dataclass(frozen=True)
class Unusable:
    """A table's rows a later stage cannot use: counts by status (or reject reason) and first reasons."""

    table: str
    rows: int
    """Every row of the table."""
    unusable: int
    by_status: dict[str, int]
    """status (or, for a rejects table, the reject reason) -> rows."""
    reasons: list[tuple[str, int]]
    """(reason, rows) of the most frequent reasons, at most `REASONS_SHOWN`."""

    def describe(self) -> str:
        """One line: "rubrics: 3 of 3 rows unusable (invalid 3); first reasons: ...".

        >>> Unusable("rubrics", 3, 3, {"invalid": 3}, [("no JSON object found", 3)]).describe()
        'rubrics: 3 of 3 rows unusable (invalid 3); first reasons: "no JSON object found" (3)'
        """
        if not self.unusable:
            return f"{self.table}: all {self.rows} rows usable"
        counts = ", ".join(f"{k} {n}" for k, n in self.by_status.items())
        what = "generations rejected" if self.table in REJECTS else "rows unusable"
        line = f"{self.table}: {self.unusable} of {self.rows} {what} ({counts})"
        if self.reasons:
            line += "; first reasons: " + "; ".join(f'"{r}" ({n})' for r, n in self.reasons)
        return line


def _reasons(frame: pl.DataFrame, column: str) -> list[tuple[str, int]]:
    texts = frame.select(pl.col(column).fill_null("").str.slice(0, REASON_CHARS).alias("reason"))
    ranked = (
        texts.filter(pl.col("reason") != "")
        .group_by("reason")
        .len()
        .sort(["len", "reason"], descending=[True, False])
    )
    return [(str(r), int(n)) for r, n in ranked.head(REASONS_SHOWN).iter_rows()]


def unusable_rows(run: RunDir, table: str) -> Unusable | None:
    """The unusable rows of `table`, or None when it is absent or records no outcome per row.

    A table with a `status` column counts its rows other than ok, by status, with their
    `error`; a rejects table (one row per reject, `REJECTS`) counts every row by `reason`, with
    its `detail` when there is one, out of the rejects and the rows kept.
    """
    if not run.tables.exists(f"{table}.parquet"):
        return None
    with run.root.fs.open_input_file(run.table_path(table)) as f:
        columns = set(pq.ParquetFile(f).schema_arrow.names)
    lf = scan_table(run, table)
    rows = int(lf.select(pl.len()).collect().item())
    if table in REJECTS and "reason" in columns:
        bad = lf.select("reason", *(["detail"] if "detail" in columns else [])).collect()
        key, why = "reason", "detail" if "detail" in columns else "reason"
        kept = REJECTS[table]
        if run.tables.exists(f"{kept}.parquet"):
            rows += int(scan_table(run, kept).select(pl.len()).collect().item())
    elif {"status", "error"} <= columns:
        bad = lf.filter(pl.col("status") != "ok").select("status", "error").collect()
        key, why = "status", "error"
    else:
        return None
    by_status = dict(bad.group_by(key).len().sort(["len", key], descending=[True, False]).iter_rows())
    if why == "detail":  # an error kind, mostly empty: shown after its reason, where there is one
        detail = pl.concat_str("reason", pl.lit(": "), "detail")
        bad = bad.with_columns(detail=pl.when(pl.col("detail").fill_null("") != "").then(detail))
    return Unusable(
        table, rows, bad.height, {str(k): int(n) for k, n in by_status.items()}, _reasons(bad, why)
    )


def explain(run: RunDir, tables: list[str]) -> str:
    """The unusable rows of `tables` (those present that record outcomes), one clause each."""
    parts = [u.describe() for t in tables if (u := unusable_rows(run, t)) is not None]
    return "; ".join(parts) if parts else "no upstream table records its rows' outcomes"
