"""Pending work: a stage's requests table, and which of its calls the store still lacks.

Everything here streams a row group at a time, so memory is bounded by a row group plus
the store's compact answered-key array, never by the stage's rows.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from actors.errors import ConfigError
from actors.store import CallStore, contains
from actors.types import Endpoint, call_key, spec_from_json
from jobs.engine.rundir import RunDir

REQUEST_COLUMNS = ("key", "model", "spec")
"""Columns every requests table has; a stage adds its own id columns beside them."""

Pending = dict[str, list[str]]
"""Model key -> local Parquet files of (key, spec) still to answer."""

Batch = list[tuple[str, str]]
"""(key, spec JSON) pairs handed to one client actor at once."""


def check_models(endpoints: dict[str, Endpoint], models: Iterable[str]) -> None:
    """Refuse model keys the config does not name, before anything is written or sent."""
    unknown = sorted(set(models) - set(endpoints))
    if unknown:
        raise ConfigError(f"stage asks for model keys not in `models`: {unknown}")


def write_request_table(sink: Any, chunks: Iterable[pl.DataFrame], endpoints: dict[str, Endpoint]) -> None:
    """Write request `chunks` to `sink` with each row's key and a `dispatch` flag on a key's first row.

    A key may repeat (two rows asking the same question); the flag lets pending work be
    found by streaming filters, never by an in-memory unique.
    """
    seen: set[bytes] = set()
    writer: pq.ParquetWriter | None = None
    for chunk in chunks:
        if chunk.is_empty():
            continue
        check_models(endpoints, chunk["model"].unique().to_list())
        keys = [
            call_key(endpoints[m], spec_from_json(js))
            for m, js in zip(chunk["model"], chunk["spec"], strict=True)
        ]
        first = []
        for k in keys:
            digest = bytes.fromhex(k)
            first.append(digest not in seen)
            seen.add(digest)
        keyed = chunk.with_columns(key=pl.Series(keys, dtype=pl.String), dispatch=pl.Series(first))
        table = keyed.select(
            *REQUEST_COLUMNS, "dispatch", pl.exclude(*REQUEST_COLUMNS, "dispatch")
        ).to_arrow()
        if writer is None:
            writer = pq.ParquetWriter(sink, table.schema, compression="zstd")
        writer.write_table(table)
    if writer is None:
        empty = pa.schema([(c, pa.string()) for c in REQUEST_COLUMNS] + [("dispatch", pa.bool_())])
        writer = pq.ParquetWriter(sink, empty)
    writer.close()


def request_totals(run: RunDir, requests_path: str) -> dict[str, int]:
    """Distinct calls per model in a requests table (its `dispatch` rows)."""
    req = run.root.scan_parquet(requests_path).filter(pl.col("dispatch")).select("key", "model")
    return dict(req.group_by("model").len().collect().iter_rows())


def write_pending(
    run: RunDir, requests_path: str, store: CallStore, retry_failed: bool, scratch: str
) -> Pending:
    """Split the calls the store lacks into one local scratch Parquet file per model.

    A stored failure counts as answered unless `retry_failed`.
    """
    answered = store.answered_keys(include_failed=not retry_failed)
    writers: dict[str, pq.ParquetWriter] = {}
    paths: Pending = {}
    try:
        requests = run.root.parquet_file(requests_path)
        for batch in requests.iter_batches(batch_size=8192, columns=["key", "model", "spec", "dispatch"]):
            keys = batch.column("key").to_numpy(zero_copy_only=False).astype("S32")
            known = contains(answered, keys)
            missing = pa.Table.from_batches([batch]).filter(
                pc.and_(batch.column("dispatch"), pa.array(~known))
            )
            for model in pc.unique(missing["model"]).to_pylist():
                rows = missing.filter(pc.equal(missing["model"], model)).select(["key", "spec"])
                if model not in writers:
                    paths[model] = [os.path.join(scratch, f"pending-{len(paths):04d}.parquet")]
                    writers[model] = pq.ParquetWriter(paths[model][0], rows.schema)
                writers[model].write_table(rows)
    finally:
        for w in writers.values():
            w.close()
    return paths


def pending_counts(pending: Pending) -> dict[str, int]:
    """Calls per model in pending files, from their footers."""
    return {m: sum(pq.ParquetFile(p).metadata.num_rows for p in paths) for m, paths in pending.items()}


def scan_pending(pending: Pending) -> pl.LazyFrame:
    """All pending calls as one lazy frame with columns key, spec, model."""
    return pl.concat([pl.scan_parquet(p).with_columns(model=pl.lit(m)) for m, p in pending.items()])


def read_batches(paths: list[str], batch_size: int) -> Iterator[Batch]:
    """Batches of one model's pending files, read one row group at a time."""
    for path in paths:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_size):
            yield list(zip(batch.column(0).to_pylist(), batch.column(1).to_pylist(), strict=True))
