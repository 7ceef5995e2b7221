"""What selection before spending keeps and spares, for the estimate (METHOD.md §2).

With `stages.responses.scope: diverse` the twelve models answer only the δ-diverse
scenarios, and rubrics and scores follow. How many those are is read from
`tables/diversity.parquet` once the diversity stage has written it; before, it is the
paper's kept share (`jobs.paper.figures.DIVERSE_SHARE`, about 300k of 410k), so those lines are
marked `~` like every other line counted from config.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from jobs.engine.rundir import RunDir
from jobs.paper.figures import DIVERSE_SHARE, PAPER_DIVERSE, PAPER_SCENARIOS
from jobs.stages.streaming import scan_table

SPARED_STAGES = ("responses", "rubrics", "scores")
"""The stages whose calls follow the responses' scope."""


@dataclass(frozen=True)
class Kept:
    """The scenarios (and pairs) a scope answers, of all there are."""

    scope: str
    scenarios: int
    kept: int
    pairs: int
    kept_pairs: int
    counted: bool
    """Read from the diversity table; else expected at `DIVERSE_SHARE` (scope diverse) or all."""

    def spared(self, stage: str) -> float:
        """Calls a stage spares per call it makes: the removed scenarios (pairs, for rubrics) per kept one."""
        whole, kept = (self.pairs, self.kept_pairs) if stage == "rubrics" else (self.scenarios, self.kept)
        return (whole - kept) / kept if kept else 0.0

    def note(self) -> str:
        if self.scope == "all":
            return "every scenario answered (stages.responses.scope=all)"
        source = (
            "counted in tables/diversity.parquet"
            if self.counted
            else f"~ expected at the paper's kept share, {PAPER_DIVERSE:,} of {PAPER_SCENARIOS:,} = "
            f"{DIVERSE_SHARE:.2f}, until the diversity stage has run"
        )
        return f"{self.kept:,} of {self.scenarios:,} scenarios answered, the δ-diverse ones ({source})"


def kept_scenarios(run: RunDir, scope: str, scenarios: int, pairs: int) -> Kept:
    """What `scope` answers of `scenarios` (from `pairs` pairs) in this run, counted or expected."""
    if scope == "all":
        return Kept(scope, scenarios, scenarios, pairs, pairs, counted=True)
    if not (run.tables.exists("diversity.parquet") and run.tables.exists("scenarios.parquet")):
        kept = round(scenarios * DIVERSE_SHARE)
        return Kept(scope, scenarios, kept, pairs, pairs, counted=False)
    diverse = scan_table(run, "diversity").filter(pl.col("diverse")).select("scenario_id")
    rows = scan_table(run, "scenarios").select("scenario_id", "pair_id")
    counts = rows.select(pl.len(), pl.col("pair_id").n_unique()).collect().row(0)
    kept = rows.join(diverse, on="scenario_id", how="semi").select(pl.len(), pl.col("pair_id").n_unique())
    n_kept, kept_pairs = kept.collect().row(0)
    return Kept(scope, counts[0], n_kept, counts[1], kept_pairs, counted=True)
