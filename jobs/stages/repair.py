"""Calls whose answers must parse as JSON, with a bounded repair loop.

A model's JSON is messy: fenced, cut off at max tokens, or the wrong shape. Each answer
goes through the stage's strict parser; one that fails is re-asked in a new call that
shows the bad answer and the validation error (a different conversation, so a different
call key the store caches like any other). After `max_repairs` such rounds the failure
is recorded with its reason, never dropped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

import polars as pl
from pydantic import ValidationError

from actors.types import CallSpec, Message, spec_to_json
from jobs.stages.base import StageContext
from jobs.stages.streaming import add_calls

T = TypeVar("T")
Status = Literal["ok", "invalid", "call_failed"]

REPAIR_PROMPT = """Your previous answer could not be used: {error}

Reply again with only the corrected JSON object, in exactly the shape the first message asks for, and nothing else."""
"""The error-feedback turn of a repair call."""

_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)
_LINE_OPENS_OBJECT = re.compile(r"^\{", re.MULTILINE)
_DECODER = json.JSONDecoder()
CHUNK_ROWS = 10_000
"""Requests built at a time (their specs are held in memory)."""
SCHEMA_COLUMN = "response_schema"
"""Optional items column: the JSON of a call's `CallSpec.response_schema` (`jobs.stages.structured`)."""
SYSTEM_COLUMN = "system"
"""Optional items column: the item's own system prompt, replacing the shared one where set (items
judged against different specs). Make it `pl.Enum` or `pl.Categorical` so each distinct prompt
is held once."""
_RESULT_COLUMNS = ["status", "text", "finish_reason", "error_kind", "error", "cost_usd"]


class ParseError(ValueError):
    """An answer that is not the JSON the prompt asked for; the message is shown to the model."""


def extract_json(text: str | None) -> Any:
    r"""The one JSON object in a model's answer, tolerating what real providers wrap it in.

    Tolerated, since none of it changes what the object says: a ``` fence (the first holding a `{`),
    prose before and after it, braces in that prose. Refused, since a guess would: an answer
    with no object, an object that does not parse (cut off, say), or several objects.

    The object starts at the first `{`, or, when that one does not parse (a brace in prose
    before it), at a later `{` that opens a line; a `{` inside an object already read is part
    of it, never a second object.

    >>> extract_json('Sure! Here it is:\n```json\n{"a": 1}\n```\nUse {curly} braces.')
    {'a': 1}
    """
    if text is None or not text.strip():
        raise ParseError("the answer was empty")
    fenced = _FENCE.search(text)
    body = fenced.group(1) if fenced and "{" in fenced.group(1) else text
    first = body.find("{")
    if first < 0:
        raise ParseError("no JSON object found in the answer")
    starts = [first, *(m.start() for m in _LINE_OPENS_OBJECT.finditer(body) if m.start() > first)]
    found: list[Any] = []
    error: json.JSONDecodeError | None = None
    end = 0
    for start in starts:
        if start < end:
            continue
        try:
            value, end = _DECODER.raw_decode(body, start)
        except json.JSONDecodeError as exc:
            error = error or exc
            continue
        found.append(value)
    if not found:
        assert error is not None
        raise ParseError(f"invalid JSON: {error.msg} at line {error.lineno} column {error.colno}")
    if len(found) > 1:
        raise ParseError(f"the answer holds {len(found)} JSON objects; give exactly one")
    return found[0]


def wrong_shape(exc: ValidationError, limit: int = 5) -> ParseError:
    """A `ParseError` listing where a validated answer is off (first `limit` problems)."""
    parts = [f"{'.'.join(str(p) for p in e['loc']) or 'answer'}: {e['msg']}" for e in exc.errors()[:limit]]
    return ParseError("wrong shape: " + "; ".join(parts))


def keyed_object(text: str | None, keys: list[str], what: str) -> dict[str, Any]:
    """The JSON object in an answer, which must have exactly `keys` (named `what`s in the error)."""
    data = extract_json(text)
    if not isinstance(data, dict):
        raise ParseError(f"the answer must be a JSON object keyed by {what}")
    missing = [k for k in keys if k not in data]
    extra = sorted(set(data) - set(keys))
    if missing or extra:
        raise ParseError(f"{what}s must be exactly {keys}: missing {missing}, unexpected {extra}")
    return data


@dataclass(frozen=True)
class Attempted(Generic[T]):
    """How one item ended: its parsed value, or the reason it has none."""

    status: Status
    value: T | None
    error: str | None
    call_key: str | None
    """Key of the first call."""
    final_call_key: str | None
    """Key of the call whose answer is used (the last repair, if any)."""
    repairs: int
    cost_usd: float = 0.0
    """Dollars of its calls in the store, every round, whether made in this session or earlier."""


def _spec(
    model: str,
    system: str | None,
    prompt: str,
    bad: str | None,
    error: str | None,
    params: dict[str, Any],
    schema: str | None = None,
) -> str:
    msgs: tuple[Message, ...] = ((Message("system", system),) if system else ()) + (Message("user", prompt),)
    if bad is not None:
        msgs += (
            Message("assistant", bad if bad.strip() else "(empty answer)"),
            Message("user", REPAIR_PROMPT.format(error=error)),
        )
    shape = json.loads(schema) if schema else None
    return spec_to_json(
        CallSpec(model=model, messages=msgs, params=tuple(sorted(params.items())), response_schema=shape)
    )


def request_chunks(
    items: pl.DataFrame, system: str | None, params: Callable[[str], dict[str, Any]], chunk_rows: int
) -> Iterator[pl.DataFrame]:
    """Requests (item_id, model, spec) of `items`, a chunk at a time; a row with a `bad` answer
    becomes a repair call that shows it with its `err`, any other a first call. A row's
    `SCHEMA_COLUMN`, where set, is the JSON shape its calls ask for; its `SYSTEM_COLUMN`, where
    set, its system prompt instead of `system`."""
    if "bad" not in items.columns:
        items = items.with_columns(bad=pl.lit(None, dtype=pl.String), err=pl.lit(None, dtype=pl.String))
    for column in (SCHEMA_COLUMN, SYSTEM_COLUMN):
        if column not in items.columns:
            items = items.with_columns(pl.lit(None, dtype=pl.String).alias(column))
    cols = ("model", "prompt", "bad", "err", SCHEMA_COLUMN, SYSTEM_COLUMN)
    for part in items.iter_slices(chunk_rows):
        specs = [
            _spec(m, own or system, prompt, bad, err, params(m), schema)
            for m, prompt, bad, err, schema, own in part.select(cols).iter_rows()
        ]
        yield part.select("item_id", "model").with_columns(spec=pl.Series(specs, dtype=pl.String))


def first_round(
    items: pl.DataFrame,
    system: str | None,
    params: Callable[[str], dict[str, Any]],
    chunk_rows: int = CHUNK_ROWS,
) -> Iterator[pl.DataFrame]:
    """The first call of each item, as `call_with_repair` sends it: a stage's plan."""
    return request_chunks(items, system, params, chunk_rows)


def call_with_repair(
    ctx: StageContext[Any],
    stage: str,
    items: pl.DataFrame,
    *,
    parse: Callable[[dict[str, Any], str], T],
    params: Callable[[str], dict[str, Any]],
    max_repairs: int,
    system: str | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> tuple[dict[str, Attempted[T]], dict[str, Any]]:
    """Ask each item's prompt, parse, re-ask the failures up to `max_repairs` times.

    Args:
        items: one row per item with columns `item_id` (unique), `model`, `prompt` and
            whatever `parse` reads from the row.
        parse: (row, answer text) -> value; raises `ParseError` (or ValueError) on a bad answer.
        params: model key -> generation parameters.
        system: a system prompt shared by every item, e.g. a long prefix worth caching; an
            item's `SYSTEM_COLUMN`, where set, replaces it.
        chunk_rows: requests built at a time (their specs are held in memory).

    Returns:
        item id -> outcome, and the summed call counts of every round.
    """
    outcomes: dict[str, Attempted[T]] = {}
    first_key: dict[str, str] = {}
    spent: dict[str, float] = {}
    pending = items.with_columns(bad=pl.lit(None, dtype=pl.String), err=pl.lit(None, dtype=pl.String))
    calls: dict[str, Any] = {}
    for round_no in range(max_repairs + 1):
        if pending.is_empty():
            break
        name = f"{stage}_r{round_no}"
        path = ctx.calls.write_requests(name, request_chunks(pending, system, params, chunk_rows))
        add_calls(calls, ctx.calls.run(name, path).as_dict())
        answers = ctx.calls.results(path, _RESULT_COLUMNS).select("item_id", "key", *_RESULT_COLUMNS)
        answered = pending.drop("bad", "err").join(answers.collect(), on="item_id", how="left")
        retry: list[dict[str, Any]] = []
        for row in answered.iter_rows(named=True):
            item, key = row["item_id"], row["key"]
            first_key.setdefault(item, key)
            cost = spent[item] = spent.get(item, 0.0) + (row["cost_usd"] or 0.0)
            if row["status"] != "ok":
                reason = f"{row['error_kind'] or 'unanswered'}: {row['error'] or 'no stored answer'}"
                outcomes[item] = Attempted("call_failed", None, reason, first_key[item], key, round_no, cost)
                continue
            try:
                value = parse(row, row["text"] or "")
            except ValueError as exc:
                error = str(exc)
                if row["finish_reason"] == "length":
                    error += " (the answer was cut off at max tokens; keep it shorter)"
                if round_no == max_repairs:
                    outcomes[item] = Attempted("invalid", None, error, first_key[item], key, round_no, cost)
                else:
                    retry.append({"item_id": item, "bad": row["text"] or "", "err": error})
                continue
            outcomes[item] = Attempted("ok", value, None, first_key[item], key, round_no, cost)
        if not retry:
            break
        fixes = pl.DataFrame(retry, schema={"item_id": pl.String, "bad": pl.String, "err": pl.String})
        pending = items.join(fixes, on="item_id", how="inner")
    return outcomes, calls
