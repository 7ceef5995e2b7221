"""Reading and writing a run's stage tables (`<run>/tables/<name>.parquet`), atomically."""

from __future__ import annotations

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from actors.errors import SpecstressError
from jobs.engine.rundir import RunDir


def write_table(run: RunDir, name: str, df: pl.DataFrame, schema: pa.Schema) -> str:
    """Write `df` as `tables/<name>.parquet` in exactly `schema` (a missing column is an error)."""
    missing = [c for c in schema.names if c not in df.columns]
    if missing:
        raise SpecstressError(f"table '{name}': missing columns {missing}")
    table = df.select(schema.names).to_arrow().cast(schema)
    run.tables.write_atomic(f"{name}.parquet", lambda sink: pq.write_table(table, sink, compression="zstd"))
    return run.table_path(name)


def read_table(run: RunDir, name: str) -> pl.DataFrame:
    if not run.tables.exists(f"{name}.parquet"):
        raise SpecstressError(f"table '{name}' is missing from {run.tables.path}: run its stage first")
    with run.root.fs.open_input_file(run.table_path(name)) as src:
        return pl.from_arrow(pq.read_table(src))  # type: ignore[return-value]
