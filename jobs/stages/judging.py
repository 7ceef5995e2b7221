"""What the labelling stages (topics, refusals, compliance, values) share: scope and inputs.

A labelling stage judges the scenarios of its scope: `selected` (default, as the paper did)
takes one subset's weighted k-center selections (`tables/selections.parquet`, in selection
order), `high` the high-disagreement scenarios of one subset of `tables/disagreement.parquet`
(highest D first), `all` every scenario with a disagreement row (i.e. scored).
`max_scenarios` caps any of them, for small runs and demos. Scenarios are judged `chunk_scenarios` at a time (requests
tables `<stage>_c<i>_r<round>`), so the prompts, which carry whole responses, are never all
in memory at once; the call keys do not depend on the chunking.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import polars as pl

from actors.errors import ConfigError
from jobs.engine.rundir import RunDir
from jobs.stages.base import StageContext
from jobs.stages.settings.judging import ScopeConf, check_scope
from jobs.stages.streaming import scan_table

STATUSES = ("ok", "invalid", "call_failed")


def disagreement_of(run: RunDir, stage: str, subset: str, key: str = "subset") -> pl.DataFrame:
    """(scenario_id, d, high, bin) of one disagreement subset; an error naming the config `key`
    that asked for it if it is absent."""
    dis = scan_table(run, "disagreement").filter(pl.col("subset") == subset)
    out = dis.select("scenario_id", "d", "high", "bin").collect()
    if out.is_empty():
        known = scan_table(run, "disagreement").select("subset").unique().collect()["subset"].to_list()
        raise ConfigError(
            f"config key 'stages.{stage}.{key}': no disagreement subset '{subset}' (known: {sorted(known)}); "
            "set stages.disagreement.subsets"
        )
    return out


def selections_of(run: RunDir, stage: str, subset: str) -> pl.DataFrame:
    """(scenario_id) of one subset's weighted k-center selections, in selection order; a clear
    error if the subset selected nothing."""
    sel = scan_table(run, "selections").filter(pl.col("subset") == subset).sort("rank")
    out = sel.select("scenario_id").collect()
    if out.is_empty():
        known = scan_table(run, "selections").select("subset").unique().collect()["subset"].to_list()
        raise ConfigError(
            f"config key 'stages.{stage}.subset': no selections for subset '{subset}' "
            f"(subsets with selections: {sorted(known)}); use scope: high or all, or another subset"
        )
    return out


def scoped_scenarios(ctx: StageContext[Any], stage: str, sc: ScopeConf) -> pl.DataFrame:
    """(scenario_id, query) of the stage's scope: in selection order, or highest disagreement first, then by id."""
    check_scope(stage, sc)
    if sc.scope == "selected":
        ids = selections_of(ctx.run, stage, sc.subset)
    else:
        dis = disagreement_of(ctx.run, stage, sc.subset)
        if sc.scope == "high":
            dis = dis.filter(pl.col("high").fill_null(False))
        ids = dis.sort(["d", "scenario_id"], descending=[True, False], nulls_last=True).select("scenario_id")
    if sc.max_scenarios is not None:
        ids = ids.head(sc.max_scenarios)
    scen = scan_table(ctx.run, "scenarios").select("scenario_id", "query").collect()
    return ids.join(scen, on="scenario_id", how="inner", maintain_order="left")


def chunked(stage: str, scen: pl.DataFrame, sc: ScopeConf) -> Iterator[tuple[str, pl.DataFrame]]:
    """(requests-table name, scenarios) for each chunk of `chunk_scenarios` scenarios in scope."""
    for i, part in enumerate(scen.iter_slices(sc.chunk_scenarios)):
        yield f"{stage}_c{i}", part


def answered(
    ctx: StageContext[Any], scenario_ids: Sequence[str], models: Sequence[str], sample: int
) -> pl.DataFrame:
    """Usable responses (scenario_id, model, sample, text) of `models` to the given scenarios."""
    return (
        scan_table(ctx.run, "responses")
        .filter(
            pl.col("scenario_id").is_in(list(scenario_ids))
            & pl.col("model").is_in(list(models))
            & (pl.col("sample") == sample)
            & (pl.col("status") == "ok")
            & (pl.col("text").str.strip_chars().str.len_chars() > 0)
        )
        .select("scenario_id", "model", "sample", "text")
        .collect()
        .sort("scenario_id", "model")
    )


def outcome_fields(out: Any) -> dict[str, Any]:
    """status and error of a `call_with_repair` outcome (a missing one is a call that never came back)."""
    if out is None:
        return {"status": "call_failed", "error": "no answer recorded"}
    return {"status": out.status, "error": out.error}


def summary_lines(summaries: dict[str, dict[str, Any]]) -> list[str]:
    """The labelling stages' headline figures, as lines for a terminal."""
    lines = []
    if "topics" in summaries:
        hits = {t: n for t, n in summaries["topics"]["by_topic"].items() if n}
        lines.append("topics: " + (", ".join(f"{t} {n}" for t, n in hits.items()) or "none found"))
    if "refusals" in summaries:
        rates = summaries["refusals"]["refusal_rate"]
        lines.append("refusal rate: " + ", ".join(f"{m} {r:.2f}" for m, r in sorted(rates.items())))
    if "compliance" in summaries:
        c = summaries["compliance"]
        kappa = "n/a" if c["fleiss_kappa"] is None else f"{c['fleiss_kappa']:.3f}"
        rates = ", ".join(f"{j} {r:.2f}" for j, r in c["problematic_rate"].items() if r is not None)
        cache = c["prompt_cache"]
        lines.append(f"compliance: Fleiss' kappa {kappa}; problematic rate {rates}; verdicts {c['majority']}")
        lines.append(
            f"prompt cache: {cache['cached_input_tokens']} of {cache['input_tokens']} judge input tokens cached, "
            f"${cache['cost_usd']:.2f} instead of ${cache['cost_without_cache_usd']:.2f}"
        )
    if "values" in summaries:
        top = summaries["values"]["top_categories"]
        lines.append("top value categories: " + ", ".join(f"{c} {n}" for c, n in top.items()))
    return lines
