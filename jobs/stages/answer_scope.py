"""Which scenarios are answered, and so scored: the δ-diverse ones or all (METHOD.md §2).

The paper embedded every scenario, kept the δ-diverse ones and paid for responses, rubrics
and scores of those alone: select before spending. `stages.responses.scope: diverse` does
the same from `tables/diversity.parquet` (so embeddings and diversity run before
responses); rubrics and scores take the responses' scope unless set. A kept scenario's
requests do not depend on the scope, so switching to `all` later pays only for the
scenarios selection removed, and switching back hides their rows without deleting them.
"""

from __future__ import annotations

from typing import Any

import polars as pl
import pyarrow.compute as pc
import pyarrow.parquet as pq

from actors.errors import ConfigError
from jobs.engine.rundir import RunDir
from jobs.stages.streaming import scan_table


def ready(run: RunDir, scope: str) -> bool:
    """Whether the tables a scope is drawn from exist, so a plan can be built."""
    return run.tables.exists("scenarios.parquet") and (
        scope == "all" or run.tables.exists("diversity.parquet")
    )


def _diverse(run: RunDir, stage: str) -> pl.LazyFrame:
    if not run.tables.exists("diversity.parquet"):
        raise ConfigError(
            f"config key 'stages.{stage}.scope': 'diverse' answers the scenarios of tables/diversity.parquet, "
            f"which is absent from {run.tables.path}: run embeddings and diversity before {stage} (list them "
            f"before it in `pipeline`), or set stages.{stage}.scope=all"
        )
    return scan_table(run, "diversity").filter(pl.col("diverse")).select("scenario_id")


def scenarios_in_scope(run: RunDir, stage: str, scope: str) -> pl.LazyFrame:
    """The rows of `tables/scenarios.parquet` in `scope`, lazily."""
    scenarios = scan_table(run, "scenarios")
    if scope == "all":
        return scenarios
    return scenarios.join(_diverse(run, stage), on="scenario_id", how="semi")


def scope_filter(run: RunDir, stage: str, scope: str) -> pc.Expression | None:
    """A filter for a pyarrow scan of the scenarios table that keeps `scope` (None keeps every row),
    so a stage streams its scenarios in batches as before."""
    if scope == "all":
        return None
    ids = _diverse(run, stage).collect()["scenario_id"].to_arrow()
    return pc.field("scenario_id").isin(ids)


def selection_saving(run: RunDir, scope: str, answered: int, calls: int, cost_usd: float) -> dict[str, Any]:
    """What answering only the δ-diverse scenarios spared a stage: the removed scenarios, and their
    calls and dollars at the stage's own per scenario (`calls` and `cost_usd` over the `answered`
    scenarios, answers made in this session or earlier)."""
    total = pq.read_metadata(run.table_path("scenarios"), filesystem=run.root.fs).num_rows
    removed = total - answered if scope == "diverse" else 0
    share = removed / answered if answered else 0.0
    return {
        "scope": scope,
        "scenarios": answered,
        "removed": removed,
        "calls_not_made": round(calls * share),
        "saved_usd": round(cost_usd * share, 4),
    }


def summary_lines(summaries: dict[str, dict[str, Any]]) -> list[str]:
    """What selecting before spending saved this run, as a line for a terminal (none with scope all)."""
    spared = {name: summaries[name]["selection"] for name in ("responses", "scores") if name in summaries}
    diverse = {name: s for name, s in spared.items() if s["scope"] == "diverse"}
    if not diverse:
        return []
    first = next(iter(diverse.values()))
    what = {"responses": "responses", "scores": "scoring calls"}
    calls = " and ".join(f"{s['calls_not_made']:,} {what[name]}" for name, s in diverse.items())
    usd = sum(s["saved_usd"] for s in diverse.values())
    return [
        f"selection: {first['removed']:,} of {first['removed'] + first['scenarios']:,} scenarios removed "
        f"before answering (not δ-diverse): {calls} not made, about ${usd:,.2f} saved "
        "at this run's cost per call"
    ]
