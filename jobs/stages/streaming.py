"""Bounded-memory table plumbing for calling stages: scan a table, stream results, write in parts.

At the paper's scale (410k scenarios x 12 models) no stage may hold its requests or
results as one Python list, so tables are read lazily and written batch by batch.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from actors.errors import SpecstressError
from jobs.engine.rundir import RunDir
from jobs.stages.base import Engine


def scan_table(run: RunDir, name: str) -> pl.LazyFrame:
    """A stage table as a lazy frame, on any filesystem the run lives on."""
    if not run.tables.exists(f"{name}.parquet"):
        raise SpecstressError(f"table '{name}' is missing from {run.tables.path}: run its stage first")
    ds = pads.dataset(run.table_path(name), format="parquet", filesystem=run.root.fs)
    return pl.scan_pyarrow_dataset(ds)


def write_parts(run: RunDir, name: str, parts: Iterable[pl.DataFrame], schema: pa.Schema) -> int:
    """Write `tables/<name>.parquet` from frames in `schema`, atomically; returns the row count."""
    rows = 0

    def write(sink: Any) -> None:
        nonlocal rows
        with pq.ParquetWriter(sink, schema, compression="zstd") as writer:
            for part in parts:
                missing = [c for c in schema.names if c not in part.columns]
                if missing:
                    raise SpecstressError(f"table '{name}': missing columns {missing}")
                writer.write_table(part.select(schema.names).to_arrow().cast(schema))
                rows += part.height

    run.tables.write_atomic(f"{name}.parquet", write)
    return rows


def iter_results(
    engine: Engine, stage: str, requests_path: str, columns: list[str], batch_rows: int
) -> Iterator[pl.DataFrame]:
    """The requests joined to their answers, in batches, via a local scratch file (never all in memory).

    The scratch file is local whatever the run directory is on: it is never a result.
    """
    with tempfile.TemporaryDirectory(prefix=f"specstress-{stage}-") as scratch:
        tmp = os.path.join(scratch, "results.parquet")
        engine.results(requests_path, columns).sink_parquet(tmp)
        for batch in pq.ParquetFile(tmp).iter_batches(batch_size=batch_rows):
            if batch.num_rows:
                yield pl.from_arrow(pa.Table.from_batches([batch]))  # type: ignore[misc]


def add_calls(total: dict[str, Any], calls: dict[str, Any]) -> dict[str, Any]:
    """Sum two `StageCalls.as_dict()` records (failure counts merged by kind)."""
    for key, value in calls.items():
        if isinstance(value, dict):
            merged = total.setdefault(key, {})
            for kind, n in value.items():
                merged[kind] = merged.get(kind, 0) + n
        elif isinstance(value, int | float):
            total[key] = total.get(key, 0) + value
    return total
