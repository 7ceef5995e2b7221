"""`tables/committee.parquet`: which scenarios committee mode sent to every model, and why.

Written by the responses stage in committee mode (`jobs/stages/committee.py`); read by the
stages after it, which must know which scenarios only the committee answered: the scores stage
counts those scored on the committee's responses alone, the disagreement stage computes D over
a subset only where every model of the subset was asked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl
import pyarrow as pa

from jobs.engine.rundir import RunDir
from jobs.stages.streaming import scan_table

NAME = "committee"

COMMITTEE_SCHEMA = pa.schema(
    [
        pa.field("scenario_id", pa.string(), nullable=False),
        pa.field("calibration", pa.bool_(), nullable=False),  # every model answers it regardless
        ("committee_d", pa.float64()),  # D over the committee, on the committee's own scoring
        ("full_d", pa.float64()),  # D over every scored model; calibration scenarios only
        pa.field("sent", pa.bool_(), nullable=False),  # every model was asked (calibration or D >= threshold)
    ]
)


def committee_scenarios(run: RunDir) -> pl.DataFrame | None:
    """The committee table, or None where the run's responses are a full sweep."""
    if not run.tables.exists(f"{NAME}.parquet"):
        return None
    return scan_table(run, NAME).collect()


def committee_only(run: RunDir) -> dict[str, Any]:
    """For a stage summary: how many scenarios only the committee answered (nothing for a full sweep)."""
    table = committee_scenarios(run)
    if table is None:
        return {}
    return {"committee_only_scenarios": int((~table["sent"]).sum())}


def not_asked(run: RunDir, subsets: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """Per subset, the scenarios some of whose models were never asked (only the committee answered
    them): D over the subset is not computed there. Empty for a full sweep."""
    table = committee_scenarios(run)
    if table is None:
        return {}
    stopped = table.filter(~pl.col("sent")).select("scenario_id")
    asked = (
        scan_table(run, "responses")
        .select("scenario_id", "model")
        .join(stopped.lazy(), on="scenario_id", how="semi")
        .unique()
        .collect()
    )
    out = {}
    for name, models in subsets.items():
        complete = (
            asked.filter(pl.col("model").is_in(list(models)))
            .group_by("scenario_id")
            .len()
            .filter(pl.col("len") == len(set(models)))
        )
        out[name] = stopped.join(complete, on="scenario_id", how="anti")["scenario_id"].to_list()
    return out
