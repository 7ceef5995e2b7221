"""A per-item system prompt in `request_chunks`: items judged against different specs."""

from __future__ import annotations

import json

import polars as pl

from jobs.stages.repair import SYSTEM_COLUMN, request_chunks

ITEMS = pl.DataFrame({"item_id": ["a", "b"], "model": ["m", "m"], "prompt": ["p1", "p2"]})


def _systems(items: pl.DataFrame, shared: str | None) -> list[str | None]:
    specs = pl.concat(request_chunks(items, shared, lambda _m: {"t": 0}, chunk_rows=1))["spec"]
    return [next((text for role, text in json.loads(s)["messages"] if role == "system"), None) for s in specs]


def test_without_the_column_requests_are_the_shared_ones_byte_for_byte() -> None:
    unset = ITEMS.with_columns(pl.lit(None, pl.String).alias(SYSTEM_COLUMN))
    before = pl.concat(request_chunks(ITEMS, "spec", lambda _m: {}, chunk_rows=10))
    assert before.equals(pl.concat(request_chunks(unset, "spec", lambda _m: {}, chunk_rows=10)))
    assert _systems(ITEMS, "spec") == ["spec", "spec"]
    assert _systems(ITEMS, None) == [None, None]


def test_an_items_own_system_replaces_the_shared_one_where_set() -> None:
    own = ITEMS.with_columns(pl.Series(SYSTEM_COLUMN, ["spec B", None], pl.Categorical))
    assert _systems(own, "spec A") == ["spec B", "spec A"]
