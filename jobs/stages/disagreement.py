"""Disagreement per model subset, weighted k-center selections and outliers (METHOD.md §5).

Reads `tables/scores.parquet` (only rows with status ok and a position, of sample
`sample`) and `tables/scenario_embeddings.parquet`, and writes:

- `tables/disagreement.parquet`: D(x, M), the high flag and the bin per (scenario, subset);
- `tables/selections.parquet`: per subset, the disagreement-weighted k-center picks among
  its high-disagreement scenarios, in rank order: the datasets users take away;
- `tables/outliers.parquet` and `tables/outlier_counts.parquet`: outlier responses and
  per-model counts.

Subsets default to the paper's six (`DEFAULT_SUBSETS`), each restricted to the models
that have scores; a default subset left with fewer than two models is dropped. Subsets
given in config are used as written, and a model without scores is an error. When the
scores exist but too few are valid to compare (every rubric invalid, say), the stage is
skipped (`NothingValid`) with the unusable rows upstream as its reason.

The paper selected the δ-diverse scenarios before answering them, and so does a run whose
responses have `scope: diverse`: only those are scored, so only those are analysed here.
`diverse_only` (default false) restricts the analysis to them when responses were paid for
every scenario (`scope: all`); otherwise the k-center selection already covers
near-duplicates, so the default keeps every scored scenario.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import polars as pl

from actors.errors import ConfigError
from jobs.analysis.disagreement import (
    BIN_LABELS,
    DEFAULT_SUBSETS,
    DISAGREEMENT_SCHEMA,
    DisagreementConfig,
    disagreement,
    position_matrix,
    subset_counts,
)
from jobs.analysis.outliers import OUTLIER_COUNTS_SCHEMA, OUTLIER_SCHEMA, OutlierConfig, outliers
from jobs.analysis.selection import SELECTION_SCHEMA, select_by_subset
from jobs.stages.base import Stage, StageContext
from jobs.stages.committee_table import not_asked
from jobs.stages.embeddings import read_embeddings
from jobs.stages.settings.disagreement import STAGE_SPEC, DisagreementConf
from jobs.stages.streaming import scan_table
from jobs.stages.tables import write_table
from jobs.stages.unusable import NothingValid, explain


def resolve_subsets(configured: dict[str, list[str]] | None, scored: set[str]) -> dict[str, list[str]]:
    """The subsets to compute: configured ones checked, or the defaults restricted to `scored`."""
    if configured is not None:
        if not configured:
            raise ConfigError("config key 'stages.disagreement.subsets': at least one subset is needed")
        for name, models in configured.items():
            missing = sorted(set(models) - scored)
            if missing or len(models) < 2:
                raise ConfigError(
                    f"config key 'stages.disagreement.subsets.{name}': needs two or more scored models; "
                    f"without scores: {missing} (scored: {sorted(scored)})"
                )
        return {name: list(models) for name, models in configured.items()}
    out = {}
    for name, models in DEFAULT_SUBSETS.items():
        present = [m for m in models if m in scored]
        if len(present) >= 2:
            out[name] = present
    if not out:
        raise ConfigError(
            f"stage 'disagreement': no default subset has two scored models (scored: {sorted(scored)}); "
            "set stages.disagreement.subsets"
        )
    return out


def _scores(ctx: StageContext[DisagreementConf], dc: DisagreementConf) -> pl.DataFrame:
    """Valid scores of the analysed sample (scenario_id, model, value_slot, position)."""
    lf = scan_table(ctx.run, "scores").filter(
        (pl.col("status") == "ok") & pl.col("position").is_not_null() & (pl.col("sample") == dc.sample)
    )
    scores = lf.select("scenario_id", "model", "value_slot", "position").collect()
    if dc.diverse_only:
        diverse = scan_table(ctx.run, "diversity").filter(pl.col("diverse")).select("scenario_id").collect()
        scores = scores.join(diverse, on="scenario_id", how="semi")
    return scores


UPSTREAM = ["scores", "rubrics", "responses"]
"""The tables whose unusable rows explain scores missing here, nearest first."""


def check_scored(ctx: StageContext[DisagreementConf], scored: set[str]) -> None:
    """Raise `NothingValid`, explained by the rows upstream, when the models to compare have no
    valid score although they were scored: the rows are at fault, not the config."""
    dc = ctx.settings
    attempted = set(scan_table(ctx.run, "scores").select("model").unique().collect()["model"].to_list())
    if len(scored) < 2:
        raise NothingValid(
            f"fewer than two models have a valid score to compare (valid: {sorted(scored)}): "
            + explain(ctx.run, UPSTREAM)
        )
    named = {m for models in (dc.subsets or {}).values() for m in models}
    invalid = sorted((named - scored) & attempted)
    if invalid:
        raise NothingValid(
            f"models {invalid} of stages.disagreement.subsets were scored but have no valid score: "
            + explain(ctx.run, UPSTREAM)
        )


def without_unasked(table: pl.DataFrame, unasked: dict[str, list[str]]) -> pl.DataFrame:
    """The table with D, its stds, the high flag and the bin null where a subset was not all asked
    (committee mode): D over the models that happened to answer would not be D over the subset."""
    if not any(unasked.values()):
        return table
    gone = pl.lit(False)
    for name, ids in unasked.items():
        gone = gone | ((pl.col("subset") == name) & pl.col("scenario_id").is_in(ids))
    cols = ["d", "std_value1", "std_value2", "high", "bin"]
    return table.with_columns(pl.when(gone).then(None).otherwise(pl.col(c)).alias(c) for c in cols)


def run(ctx: StageContext[DisagreementConf]) -> dict[str, Any]:
    """Stage entry point: disagreement, selections and outliers; returns per-subset counts."""
    dc = ctx.settings
    scores = _scores(ctx, dc)
    models = tuple(sorted(scores["model"].unique().to_list()))
    check_scored(ctx, set(models))
    subsets = resolve_subsets(dc.subsets, set(models))
    pm = position_matrix(scores, models)
    table = disagreement(
        pm,
        DisagreementConfig(
            subsets=subsets,
            std=dc.std,  # type: ignore[arg-type]
            high_threshold=dc.high_threshold,
            min_models=dc.min_models,
        ),
    )
    unasked = not_asked(ctx.run, subsets)
    table = without_unasked(table, unasked)
    write_table(ctx.run, "disagreement", table, DISAGREEMENT_SCHEMA)

    ids, x, meta = read_embeddings(ctx)
    sel = select_by_subset(x, ids, table, threshold=dc.threshold, k=dc.k, seed=ctx.seed, use_ray=dc.use_ray)
    write_table(ctx.run, "selections", sel.table, SELECTION_SCHEMA)

    out = outliers(
        pm,
        OutlierConfig(
            gap=dc.gap, share=Fraction(dc.share).limit_denominator(10_000), min_models=dc.outlier_min_models
        ),
    )
    write_table(ctx.run, "outliers", out.rows, OUTLIER_SCHEMA)
    write_table(ctx.run, "outlier_counts", out.counts, OUTLIER_COUNTS_SCHEMA)

    embedded = table.join(pl.DataFrame({"scenario_id": ids}), on="scenario_id", how="semi")
    high_embedded = dict(embedded.group_by("subset").agg(pl.col("high").sum()).iter_rows())
    selected = dict(sel.table.group_by("subset").len().iter_rows()) if sel.table.height else {}
    per_subset: dict[str, dict[str, Any]] = {}
    for row in subset_counts(table).iter_rows(named=True):
        name = row["subset"]
        per_subset[name] = {
            "models": len(subsets[name]),
            "scenarios": row["n_scenarios"],
            "high": row["n_high"],
            "high_without_embedding": row["n_high"] - int(high_embedded.get(name) or 0),
            "selected": int(selected.get(name, 0)),
            "not_asked": len(unasked.get(name, [])),
            "bins": {b: row[b] for b in BIN_LABELS},
        }
    return {
        "scenarios": pm.positions.shape[0],
        "models": list(models),
        "std": dc.std,
        "diverse_only": dc.diverse_only,
        "embedding_model": meta.get("embedding_model"),
        "subsets": per_subset,
        "outliers": {m: n for m, n in out.counts.select("model", "n_outliers").iter_rows()},
    }


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """The per-subset counts and outlier counts of a `run` summary, as lines for a terminal."""
    lines = [f"{'subset':<20} {'models':>6} {'scenarios':>9} {'high':>6} {'selected':>8}"]
    for name, c in summary["subsets"].items():
        lines.append(f"{name:<20} {c['models']:>6} {c['scenarios']:>9} {c['high']:>6} {c['selected']:>8}")
    unasked = {name: c["not_asked"] for name, c in summary["subsets"].items() if c.get("not_asked")}
    if unasked:
        lines.append(
            "committee mode: D not computed where a subset's models were not all asked: "
            + ", ".join(f"{name} {n}" for name, n in unasked.items())
            + " scenarios"
        )
    ranked = sorted(summary["outliers"].items(), key=lambda kv: (-kv[1], kv[0]))
    lines.append("outliers: " + ", ".join(f"{m} {n}" for m, n in ranked))
    return lines


STAGE = Stage(STAGE_SPEC, run=run)
