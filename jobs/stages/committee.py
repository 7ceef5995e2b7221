"""Committee mode of the responses stage: a few models answer every scenario, the rest only where
the committee disagrees (`stages.responses.committee`).

1. The committee answers every scenario of the scope; every model answers the calibration
   sample (`calibration_share`, a draw seeded by scenario id, so a resumed run draws the same).
2. The committee's answers are scored as the scores stage scores (its scorer, mode, labels and
   structured setting): each scenario on the committee's responses alone, and each calibration
   scenario on every model's. D over the committee comes from the first, D over every scored
   model from the second, as the disagreement stage computes D.
3. On the calibration sample the threshold is the largest committee D that still sends on
   `target_recall` of the high-disagreement scenarios (`jobs.analysis.committee`), with the
   recall's 95% interval.
4. The other models answer the scenarios whose committee D reaches it (or that have no committee
   D), and the responses table is rebuilt from every call made.

Nothing is paid twice: the scores stage later asks the same scoring requests for the scenarios
only the committee answered (and, per response, for every response), which the call store
answers for free; only scenarios sent on to every model are scored anew in joint mode. Every
step is a pure function of the call store, so a resumed run asks exactly what it asked before.
`tables/committee.parquet` records the outcome per scenario (`jobs/stages/committee_table.py`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import replace
from typing import Any

import numpy as np
import polars as pl
import pyarrow.compute as pc

from jobs.analysis.committee import Threshold, choose_threshold, sending_d
from jobs.analysis.disagreement import DisagreementConfig, d_over
from jobs.stages.answer_scope import scenarios_in_scope
from jobs.stages.base import StageContext
from jobs.stages.committee_table import COMMITTEE_SCHEMA, NAME, committee_scenarios
from jobs.stages.scores import Tally, score_chunks, scored_parts
from jobs.stages.settings.disagreement import DisagreementConf
from jobs.stages.settings.responses import ResponsesConf
from jobs.stages.settings.scores import ScoresConf
from jobs.stages.streaming import scan_table
from jobs.stages.tables import write_table

Asked = Mapping[str, AbstractSet[str]]
"""Model -> the scenario ids it is asked; a model not in it answers every scenario of the scope."""

Answer = Callable[[StageContext[ResponsesConf], Asked | None], dict[str, Any]]
"""The responses stage's call round: requests for what is asked, calls, the table; its summary."""


def in_calibration(scenario_id: str, seed: int, share: float) -> bool:
    """Whether a scenario is in the calibration sample: a uniform draw seeded by its id and the run's seed."""
    digest = hashlib.blake2b(f"{seed}|committee|{scenario_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < share


def _scope_ids(ctx: StageContext[ResponsesConf]) -> list[str]:
    rows = scenarios_in_scope(ctx.run, "responses", ctx.settings.scope).select("scenario_id").collect()
    return rows["scenario_id"].to_list()


def _calibration(ctx: StageContext[ResponsesConf], ids: list[str]) -> set[str]:
    """The scenarios of `ids` in the calibration sample."""
    share = ctx.settings.committee.calibration_share
    return {sid for sid in ids if in_calibration(sid, ctx.seed, share)}


def _others(rc: ResponsesConf) -> list[str]:
    return [m for m in rc.models if m not in set(rc.committee.models)]


def asked_so_far(ctx: StageContext[ResponsesConf]) -> dict[str, set[str]]:
    """What the rule asks the other models: the scenarios a committee table sent on, else (before the
    committee has been scored) the calibration sample alone."""
    rc = ctx.settings
    table = committee_scenarios(ctx.run)
    if table is not None:
        ids = set(table.filter(pl.col("sent"))["scenario_id"].to_list())
    else:
        ids = _calibration(ctx, _scope_ids(ctx))
    return dict.fromkeys(_others(rc), ids)


def _d(scores: pl.DataFrame, models: list[str], dc: DisagreementConf) -> pl.DataFrame:
    """D over `models` per scenario (scenario_id, d), from valid score rows, as the disagreement stage takes it."""
    valid = scores.filter((pl.col("status") == "ok") & pl.col("position").is_not_null())
    if valid.is_empty():
        return pl.DataFrame(schema={"scenario_id": pl.String, "d": pl.Float64})
    config = DisagreementConfig(
        std=dc.std,  # type: ignore[arg-type]
        high_threshold=dc.high_threshold,
        min_models=dc.min_models,
    )
    return d_over(valid, models, config)


def _score(
    ctx: StageContext[ResponsesConf],
    sc: ScoresConf,
    models: list[str],
    ids: AbstractSet[str] | None,
    tally: Tally,
) -> pl.DataFrame:
    """Score the responses of `models` (for the scenarios `ids`, or all) as the scores stage would."""
    sctx = replace(ctx, settings=sc, consulted={})
    responses = scan_table(ctx.run, "responses").filter(pl.col("model").is_in(models))
    only = None if ids is None else pc.field("scenario_id").isin(sorted(ids))
    stem = "committee_scores" if ids is None else "committee_calibration"
    parts = list(scored_parts(sctx, score_chunks(sctx, responses, only, stem), tally))
    return pl.concat(parts) if parts else pl.DataFrame()


def run_committee(ctx: StageContext[ResponsesConf], answer: Answer) -> dict[str, Any]:
    """The committee mode's rounds (module docstring); the responses summary with a `committee` record."""
    rc, cc = ctx.settings, ctx.settings.committee
    sc: ScoresConf = ctx.settings_of("scores")
    dc: DisagreementConf = ctx.settings_of("disagreement")
    ctx.calls.check_models([sc.model])
    ids = _scope_ids(ctx)
    calibration = _calibration(ctx, ids)
    others = _others(rc)
    first = answer(ctx, dict.fromkeys(others, calibration))

    tally = Tally()
    committee_d = _d(_score(ctx, sc, list(cc.models), None, tally), list(cc.models), dc)
    scored = list(sc.models or rc.models)
    full_d = _d(_score(ctx, sc, scored, calibration, tally), scored, dc)

    table = (
        pl.DataFrame({"scenario_id": ids})
        .join(committee_d.rename({"d": "committee_d"}), on="scenario_id", how="left")
        .join(full_d.rename({"d": "full_d"}), on="scenario_id", how="left")
        .with_columns(calibration=pl.col("scenario_id").is_in(list(calibration)))
        .with_columns(full_d=pl.when(pl.col("calibration")).then(pl.col("full_d")))
    )
    cal = table.filter(pl.col("calibration"))
    threshold = choose_threshold(
        cal["committee_d"].to_numpy().astype(np.float64),
        cal["full_d"].to_numpy().astype(np.float64),
        cc.target_recall,
        dc.high_threshold,
    )
    reaches = sending_d(table["committee_d"].to_numpy().astype(np.float64)) >= threshold.threshold
    table = table.with_columns(sent=pl.col("calibration") | pl.Series(reaches))
    sent = set(table.filter(pl.col("sent"))["scenario_id"].to_list())
    final = answer(ctx, dict.fromkeys(others, sent))
    write_table(ctx.run, NAME, table, COMMITTEE_SCHEMA)
    final["calls"] = {"first_round": first["calls"], "rest": final["calls"]}
    final["committee"] = _record(rc, threshold, table, final["by_model"], tally)
    return final


def _record(
    rc: ResponsesConf, t: Threshold, table: pl.DataFrame, by_model: dict[str, dict[str, Any]], tally: Tally
) -> dict[str, Any]:
    """The committee's outcome for the stage summary: threshold, recall with interval, what went on,
    and the responses' cost against a full sweep of the same scenarios."""
    n = table.height
    n_sent = int(table["sent"].sum())
    asked = {m: (n if m in rc.committee.models else n_sent) for m in rc.models}
    spent = sum(by_model.get(m, {}).get("cost_usd", 0.0) for m in rc.models)
    # A full sweep asks every model every scenario, each at its mean cost per scenario asked here.
    full = sum(by_model.get(m, {}).get("cost_usd", 0.0) / asked[m] * n for m in rc.models if asked[m])
    return {
        "models": list(rc.committee.models),
        "scenarios": n,
        "calibration": int(table["calibration"].sum()),
        "target_recall": rc.committee.target_recall,
        "threshold": t.threshold,
        "recall": None if t.n_high == 0 else round(t.recall, 4),
        "recall_interval": [round(t.recall_low, 4), round(t.recall_high, 4)],
        "high_in_calibration": t.n_high,
        "sent": n_sent,
        "share_sent": round(n_sent / n, 4) if n else 0.0,
        "responses_usd": round(spent, 4),
        "full_sweep_usd": round(full, 4),
        "cost_share": round(spent / full, 4) if full else None,
        "committee_scoring": {
            "items": tally.items,
            "cost_usd": round(tally.cost_usd, 4),
            "calls": tally.calls,
        },
    }


def summary_lines(summaries: dict[str, dict[str, Any]]) -> list[str]:
    """Committee mode's outcome, as lines for a terminal (none for a full sweep)."""
    c = summaries.get("responses", {}).get("committee")
    if not c:
        return []
    if c["recall"] is None:
        recall = "recall not measured: no high-disagreement scenario in the calibration sample, so every scenario went on"
    else:
        low, high = c["recall_interval"]
        recall = (
            f"recall {c['recall']:.0%} (95% interval {low:.0%}-{high:.0%}) of the {c['high_in_calibration']} "
            f"high-disagreement calibration scenarios (target {c['target_recall']:.0%})"
        )
    cost = (
        ""
        if c["cost_share"] is None
        else (
            f"; responses cost ${c['responses_usd']:,.2f}, {c['cost_share']:.0%} of a full sweep's ${c['full_sweep_usd']:,.2f}"
        )
    )
    return [
        f"committee {', '.join(c['models'])}: threshold D >= {c['threshold']:.3g} on {c['calibration']} "
        f"calibration scenarios; {recall}",
        f"committee: {c['sent']:,} of {c['scenarios']:,} scenarios ({c['share_sent']:.0%}) went to every model{cost}",
    ]
