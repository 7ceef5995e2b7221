"""Responses: each scenario of the scope goes to every model of the sweep, `samples` times (METHOD.md §3).

`scope: diverse` answers the δ-diverse scenarios only, as the paper did, and `all` every
one (`jobs.stages.answer_scope`). The scenario's query is the user message, under the
configured system prompt. Settings layer: the registry's `params`, then the stage's defaults, then the model's entry in
`per_model`. Requests are streamed in chunks and the table is rebuilt from the call
store on every run, so adding a model to `models` pays only for its calls, and removing
one hides its rows without deleting anything paid (the store is append-only).

In committee mode (`stages.responses.committee`) a few models answer every scenario and the
others only where the committee disagrees (`jobs.stages.committee`).

Output: `tables/responses.parquet`, one row per (scenario, model, sample), failures included.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.dataset as pads

from actors.types import chat, spec_to_json
from jobs.stages import committee
from jobs.stages.answer_scope import ready, scenarios_in_scope, scope_filter, selection_saving
from jobs.stages.base import Plan, Stage, StageContext
from jobs.stages.committee_table import NAME as COMMITTEE
from jobs.stages.params import layer
from jobs.stages.settings.base import ModelView
from jobs.stages.settings.responses import STAGE_SPEC, ResponsesConf, ResponseSettings, samples_of
from jobs.stages.streaming import iter_results, write_parts

RESPONSES_SCHEMA = pa.schema(
    [
        pa.field("scenario_id", pa.string(), nullable=False),
        pa.field("model", pa.string(), nullable=False),  # model key of the sweep
        pa.field("sample", pa.int64(), nullable=False),  # 0-based sample index
        ("text", pa.string()),  # null when the call failed
        ("finish_reason", pa.string()),  # stop | length | content_filter | refusal | other
        ("refusal", pa.bool_()),  # the provider's own refusal flag
        ("input_tokens", pa.int64()),
        ("output_tokens", pa.int64()),
        ("cost_usd", pa.float64()),
        pa.field("call_key", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),  # ok | failed
        ("error", pa.string()),  # "<kind>: <message>" for failures
    ]
)


_STORE_COLUMNS = ["status", "text", "finish_reason", "refusal", "input_tokens", "output_tokens"]
_STORE_COLUMNS += ["cost_usd", "error_kind", "error"]


def _apply(params: dict[str, Any], provider: str, s: ResponsesConf | ResponseSettings) -> None:
    layer(
        params,
        provider,
        temperature=s.temperature,
        max_tokens=s.max_tokens,
        reasoning_effort=s.reasoning_effort,
        thinking_budget=s.thinking_budget,
    )


@dataclass(frozen=True)
class ModelPlan:
    """What one model of the sweep is sent: system prompt, parameters, sample count."""

    system: str | None
    params: dict[str, Any]
    samples: int


def plan_for(m: ModelView, rc: ResponsesConf) -> ModelPlan:
    """Registry params, then stage defaults, then the model's overrides."""
    params = dict(m.params)
    _apply(params, m.provider, rc)
    over = rc.per_model.get(m.key, ResponseSettings())
    _apply(params, m.provider, over)
    system = over.system_prompt if over.system_prompt is not None else rc.system_prompt
    return ModelPlan(system or None, params, samples_of(rc, m.key))


def _request_chunks(
    ctx: StageContext[ResponsesConf], asked: Mapping[str, AbstractSet[str]] | None = None
) -> Iterator[pl.DataFrame]:
    """Every model's requests for the scenarios of the scope; a model in `asked` only for its ids."""
    rc = ctx.settings
    asked = asked or {}
    plans = {m: plan_for(ctx.model(m), rc) for m in rc.models}
    ds = pads.dataset(ctx.run.table_path("scenarios"), format="parquet", filesystem=ctx.run.root.fs)
    only = scope_filter(ctx.run, "responses", rc.scope)
    for batch in ds.to_batches(columns=["scenario_id", "query"], filter=only, batch_size=rc.chunk_rows):
        ids, queries = batch.column(0).to_pylist(), batch.column(1).to_pylist()
        for model, plan in plans.items():
            rows: dict[str, list[Any]] = {"scenario_id": [], "model": [], "sample": [], "spec": []}
            wanted = asked.get(model)
            for sid, query in zip(ids, queries, strict=True):
                if wanted is not None and sid not in wanted:
                    continue
                for sample in range(plan.samples):
                    spec = chat(model, query, system=plan.system, sample=sample, **plan.params)
                    rows["scenario_id"].append(sid)
                    rows["model"].append(model)
                    rows["sample"].append(sample)
                    rows["spec"].append(spec_to_json(spec))
            yield pl.DataFrame(
                rows,
                schema={"scenario_id": pl.String, "model": pl.String, "sample": pl.Int64, "spec": pl.String},
            )


def _rows(answered: pl.DataFrame) -> pl.DataFrame:
    return answered.select(
        "scenario_id",
        "model",
        "sample",
        "text",
        "finish_reason",
        "refusal",
        "input_tokens",
        "output_tokens",
        "cost_usd",
        call_key="key",
        status=pl.col("status").fill_null("failed"),
        error=pl.when(pl.col("status") == "ok")
        .then(None)
        .otherwise(
            pl.concat_str(
                pl.col("error_kind").fill_null("unanswered"), pl.lit(": "), pl.col("error").fill_null("")
            )
        ),
    )


def plan(ctx: StageContext[ResponsesConf]) -> Plan:
    """Every scenario of the scope to every model of the sweep, once the tables of the scope exist;
    in committee mode, what the committee's rule has asked so far (`committee.asked_so_far`)."""
    if not ready(ctx.run, ctx.settings.scope):
        return {}
    asked = committee.asked_so_far(ctx) if ctx.settings.committee.models else None
    return {"responses": _request_chunks(ctx, asked)}


def answer(
    ctx: StageContext[ResponsesConf], asked: Mapping[str, AbstractSet[str]] | None = None
) -> dict[str, Any]:
    """Write the requests, make the missing calls, rebuild the table from the store; its summary."""
    rc = ctx.settings
    path = ctx.calls.write_requests("responses", _request_chunks(ctx, asked))
    calls = ctx.calls.run("responses", path)
    by_model: dict[str, dict[str, Any]] = {}
    spent = 0.0  # dollars of the answers, made in this session or earlier

    def parts() -> Iterator[pl.DataFrame]:
        nonlocal spent
        for answered in iter_results(ctx.calls, "responses", path, _STORE_COLUMNS, rc.chunk_rows):
            part = _rows(answered)
            spent += part["cost_usd"].fill_null(0.0).sum()
            counts = part.group_by("model").agg(
                ok=(pl.col("status") == "ok").sum(),
                failed=(pl.col("status") != "ok").sum(),
                refusals=pl.col("refusal").fill_null(False).sum(),
                cost_usd=pl.col("cost_usd").fill_null(0.0).sum(),
            )
            for m, ok, failed, refusals, cost in counts.iter_rows():
                agg = by_model.setdefault(m, {"ok": 0, "failed": 0, "refusals": 0, "cost_usd": 0.0})
                agg["ok"] += ok
                agg["failed"] += failed
                agg["refusals"] += refusals
                agg["cost_usd"] += cost
            yield part

    rows = write_parts(ctx.run, "responses", parts(), RESPONSES_SCHEMA)
    answered = scenarios_in_scope(ctx.run, "responses", rc.scope).select(pl.len()).collect().item()
    for agg in by_model.values():
        agg["cost_usd"] = round(agg["cost_usd"], 6)
    return {
        "responses": rows,
        "by_model": dict(sorted(by_model.items())),
        "calls": calls.as_dict(),
        "selection": selection_saving(ctx.run, rc.scope, answered, rows, spent),
    }


def run(ctx: StageContext[ResponsesConf]) -> dict[str, Any]:
    """Stage entry point: the sweep, or in committee mode the committee first and the rest by its rule."""
    ctx.calls.check_models(ctx.settings.models)
    if ctx.settings.committee.models:
        return committee.run_committee(ctx, answer)
    if ctx.run.tables.exists(f"{COMMITTEE}.parquet"):
        # A full sweep now: every model answers every scenario, so the earlier rule no longer applies.
        ctx.run.tables.delete(f"{COMMITTEE}.parquet")
    return answer(ctx)


STAGE = Stage(STAGE_SPEC, run=run, plan=plan)
