"""Structured outputs for the stages that ask for JSON: the schema sent, and the fallback without it.

Rubrics, scores and the four judges ask for JSON of a known shape. With `structured: auto`
each call also sends that shape as a JSON Schema, derived from the stage's own pydantic
model (`json_schema`); the adapters put it in each provider's structured-output request
(`actors.providers.structured`), so grammar-constrained decoding returns well-formed JSON of
the shape. The answer is still validated strictly, and repaired if need be, as before.

A model or server that refuses the schema (a 4xx naming it) is asked without it instead:
before a model's first round, one item is sent alone as a probe; if the schema is refused
there, or on any later item, those items are asked again in plain prompting, once, and the
model gets no schema for the rest of the stage. The stage's summary records each fallback.

The schema is part of the request, so of the call key: `jobs.context.resolve_keyed`
keeps the mode a run directory's stage last ran with, so a resume never re-asks its calls.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import polars as pl
from pydantic import BaseModel, TypeAdapter

from actors.errors import CallsFailed
from actors.types import canonical_json
from jobs.stages.base import StageContext
from jobs.stages.repair import SCHEMA_COLUMN, Attempted, call_with_repair, first_round
from jobs.stages.settings.structured import StructuredConf
from jobs.stages.streaming import add_calls

T = TypeVar("T")

_KEEP = ("type", "enum", "minimum", "maximum", "minItems", "maxItems")
"""JSON Schema keywords every provider's structured output accepts (see `actors.providers.structured`)."""

_REFUSED = re.compile(r"schema|response_format|structured|tool", re.IGNORECASE)
"""What a provider's 4xx message names when it is the schema it refuses."""
_REFUSED_5XX = re.compile(r"response_format|json_schema", re.IGNORECASE)
"""The same in a 5xx message: llama-cpp-python's server answers an unknown `response_format`
type with a 500 naming it."""


def is_on(settings: StructuredConf) -> bool:
    """Whether the stage sends schemas (an unresolved setting means a new stage: `auto`)."""
    return settings.structured != "off"


def json_schema(shape: type[BaseModel] | TypeAdapter[Any]) -> dict[str, Any]:
    """The neutral JSON Schema of a pydantic model or type: references inlined, titles and
    every keyword some provider refuses left out (validation stays the model's job)."""
    full = shape.json_schema() if isinstance(shape, TypeAdapter) else shape.model_json_schema()
    return _neutral(full, full.get("$defs", {}))


def _neutral(schema: Mapping[str, Any], defs: Mapping[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        return _neutral(defs[schema["$ref"].rsplit("/", 1)[-1]], defs)
    out: dict[str, Any] = {k: schema[k] for k in _KEEP if k in schema}
    if "const" in schema:
        out["enum"] = [schema["const"]]
    if "properties" in schema:
        out["properties"] = {k: _neutral(v, defs) for k, v in schema["properties"].items()}
        out["required"] = list(schema.get("required", []))
    if "items" in schema:
        out["items"] = _neutral(schema["items"], defs)
    return out


def keyed_schema(keys: Sequence[str], value: Mapping[str, Any]) -> dict[str, Any]:
    """An object with exactly `keys`, each holding `value` (the judges' answers keyed by label)."""
    return {"type": "object", "properties": {key: dict(value) for key in keys}, "required": list(keys)}


def labelled_schema(name: str, value: Mapping[str, Any]) -> pl.Expr:
    """Each item's `response_schema` cell: an object keyed by the labels of its `labels` column
    (a JSON list), each label holding `value`."""
    return pl.col("labels").map_elements(
        lambda labels: schema_column(name, keyed_schema(json.loads(labels), value)), return_dtype=pl.String
    )


def schema_column(name: str, schema: Mapping[str, Any]) -> str:
    """The `response_schema` cell of an item: a named schema as canonical JSON."""
    return canonical_json({"name": name, "schema": schema})


def with_schema(
    items: pl.DataFrame, settings: StructuredConf, name: str, schema: Mapping[str, Any] | pl.Expr
) -> pl.DataFrame:
    """`items` with the `response_schema` column its calls send: one schema for all, or an
    expression giving each item's cell (`schema_column`); none when the setting is off."""
    if not is_on(settings):
        return items
    cell = schema if isinstance(schema, pl.Expr) else pl.lit(schema_column(name, schema))
    return items.with_columns(cell.alias(SCHEMA_COLUMN))


def refuses_schema(outcome: Attempted[Any]) -> bool:
    """Whether an item's call failed because the provider refused the schema (an error naming it)."""
    error = outcome.error or ""
    if outcome.status != "call_failed":
        return False
    if error.startswith("client:"):
        return bool(_REFUSED.search(error))
    return error.startswith("server:") and bool(_REFUSED_5XX.search(error))


@dataclass
class Fallbacks:
    """Per stage: the models that refused the schema, and why (the summary's `structured_fallback`)."""

    reasons: dict[str, str] = field(default_factory=dict)
    probed: set[str] = field(default_factory=set)
    """Models whose probe has been sent in this stage."""

    def plain(self, items: pl.DataFrame) -> pl.DataFrame:
        """`items` without the schema for the models that refused it."""
        if SCHEMA_COLUMN not in items.columns or not self.reasons:
            return items
        refused = pl.col("model").is_in(list(self.reasons))
        return items.with_columns(
            pl.when(refused).then(None).otherwise(pl.col(SCHEMA_COLUMN)).alias(SCHEMA_COLUMN)
        )

    def summary(self) -> dict[str, Any]:
        return {"structured_fallback": dict(self.reasons)} if self.reasons else {}


def call_structured(
    ctx: StageContext[Any],
    stem: str,
    items: pl.DataFrame,
    fallbacks: Fallbacks,
    *,
    parse: Callable[[dict[str, Any], str], T],
    params: Callable[[str], dict[str, Any]],
    max_repairs: int,
    system: str | None = None,
    **kwargs: Any,
) -> tuple[dict[str, Attempted[T]], dict[str, Any]]:
    """`call_with_repair` with the schema where the models take it, plain prompting where not.

    A model not yet seen in this stage is probed with one item first, so a model that refuses
    the schema costs one refused call, not a round of them (nor a fail-fast stop).
    """
    calls: dict[str, Any] = {}
    if SCHEMA_COLUMN in items.columns:
        _probe(ctx, stem, items, fallbacks, params, system, calls)
    items = fallbacks.plain(items)
    opts = {"parse": parse, "params": params, "max_repairs": max_repairs, "system": system, **kwargs}
    outcomes, made = call_with_repair(ctx, stem, items, **opts)
    add_calls(calls, made)
    refused = {i: o for i, o in outcomes.items() if refuses_schema(o)}
    if refused and SCHEMA_COLUMN in items.columns:
        again = items.filter(pl.col("item_id").is_in(list(refused)) & pl.col(SCHEMA_COLUMN).is_not_null())
        for model, item in again.select("model", "item_id").iter_rows():
            fallbacks.reasons.setdefault(model, refused[item].error or "")
        retried, made = call_with_repair(ctx, f"{stem}_plain", fallbacks.plain(again), **opts)
        add_calls(calls, made)
        outcomes.update(retried)
    return outcomes, calls


def _probe(
    ctx: StageContext[Any],
    stem: str,
    items: pl.DataFrame,
    fallbacks: Fallbacks,
    params: Callable[[str], dict[str, Any]],
    system: str | None,
    calls: dict[str, Any],
) -> None:
    """Send one item of each model still unprobed alone; record the models that refuse its schema.

    The probe is an item's own first call, so its answer is stored and reused by the round.
    """
    seen = fallbacks.probed
    first = items.filter(pl.col(SCHEMA_COLUMN).is_not_null() & ~pl.col("model").is_in(list(seen)))
    first = first.unique("model", keep="first", maintain_order=True)
    if first.is_empty():
        return
    seen.update(first["model"].to_list())
    name = f"{stem}_probe"
    path = ctx.calls.write_requests(name, first_round(first, system, params))
    try:
        add_calls(calls, ctx.calls.run(name, path).as_dict())
        every_probe_failed = None
    except CallsFailed as exc:  # a refused schema is an answer here; any other failure is raised below
        every_probe_failed = exc
    answers = ctx.calls.results(path, ["status", "error_kind", "error"]).collect()
    refused = False
    for row in answers.iter_rows(named=True):
        error = f"{row['error_kind']}: {row['error']}"
        probe = Attempted("call_failed", None, error, row["key"], row["key"], 0)
        if row["status"] != "ok" and refuses_schema(probe):
            fallbacks.reasons[row["model"]] = error
            refused = True
    if every_probe_failed is not None and not refused:
        raise every_probe_failed
