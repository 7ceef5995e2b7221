"""Diversity: the δ-diverse set of scenarios over their query embeddings (METHOD.md §2).

`jobs.analysis.diversity.delta_select` gives the paper's guarantees (every scenario lies
within δ of a kept one; kept ones are pairwise more than δ apart), seeded by the run seed.

Output: `tables/diversity.parquet` (scenario_id, diverse, center_id, center_distance):
the flag, plus the kept scenario that covers each one, so a user sees what each kept
query stands for. The summary reports an exact coverage and separation check on a seeded
sample of `check_sample` scenarios.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from actors.errors import ConfigError
from jobs.analysis.diversity import check_selection, delta_select
from jobs.analysis.selection import DIVERSE_SCHEMA, diverse_table
from jobs.stages.embeddings import read_embeddings
from jobs.tables import write_table

if TYPE_CHECKING:
    from jobs.driver import StageContext

TABLE = "diversity"


@dataclass
class DiversityConf:
    """Settings of the `diversity` stage (config section `stages.diversity`)."""

    delta: float = 0.4
    """L2 threshold on unit vectors (the paper's 0.4)."""
    n_cells: int | None = None
    """k-means cells used to prune distance checks; None picks by size. Never changes the guarantees."""
    check_sample: int = 2000
    """Scenarios checked exactly for coverage and separation (reported in the summary); 0 skips."""


def run(ctx: StageContext) -> dict[str, Any]:
    """Stage entry point: select the δ-diverse scenarios, write `tables/diversity.parquet`."""
    dc: DiversityConf = ctx.conf.stages.diversity
    if not dc.delta > 0:
        raise ConfigError(f"config key 'stages.diversity.delta': must be > 0, got {dc.delta}")
    if dc.check_sample < 0:
        raise ConfigError(f"config key 'stages.diversity.check_sample': must be >= 0, got {dc.check_sample}")
    ids, x, meta = read_embeddings(ctx)
    t0 = time.perf_counter()
    sel = delta_select(x, delta=dc.delta, seed=ctx.conf.seed, n_cells=dc.n_cells)
    seconds = time.perf_counter() - t0
    write_table(ctx.run, TABLE, diverse_table(ids, sel), DIVERSE_SCHEMA)
    summary: dict[str, Any] = {
        "scenarios": len(ids),
        "diverse": int(sel.diverse.sum()),
        "delta": dc.delta,
        "n_cells": sel.n_cells,
        "seconds": round(seconds, 3),
        "embedding_model": meta.get("embedding_model"),
    }
    if dc.check_sample and len(ids):
        coverage, separation = check_selection(
            x, sel, delta=dc.delta, sample=dc.check_sample, seed=ctx.conf.seed
        )
        summary.update(coverage_ok=coverage, separation_ok=separation)
    return summary
