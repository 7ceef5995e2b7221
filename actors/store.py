"""The content-addressed call store: append-only Parquet shards, one row per finished call.

Every shard gets a unique name and is written whole: on a local or NFS path it is written
to a hidden temporary name and renamed, so a reader never sees half a shard; readers skip
hidden names. The set of answered keys is the union of the shards. Rows reach a shard from
the clients' write-ahead logs (`actors/wal.py`), so a kill loses no answer that arrived,
and a rerun (or another run sharing the same `cache_dir`) re-pays nothing that was stored.
"""

from __future__ import annotations

import time
import uuid

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from actors.storage import Location

CALLS_DIR = "calls"

STORE_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("model", pa.string()),
        ("provider", pa.string()),
        ("model_id", pa.string()),
        ("kind", pa.string()),
        ("status", pa.string()),  # "ok" | "failed"
        ("error_kind", pa.string()),
        ("error", pa.string()),
        ("attempts", pa.int32()),
        ("rate_limited", pa.int32()),  # slow-down answers (429 rate limit, 529/503 overload) this call met
        ("text", pa.string()),
        ("thinking", pa.string()),
        ("finish_reason", pa.string()),
        ("refusal", pa.bool_()),
        ("flag", pa.string()),  # "truncated", "empty", ... : answered but not usable as is
        ("input_tokens", pa.int64()),
        ("output_tokens", pa.int64()),
        ("cached_input_tokens", pa.int64()),
        ("cache_write_tokens", pa.int64()),
        ("reasoning_tokens", pa.int64()),
        ("cost_usd", pa.float64()),
        ("latency_s", pa.float64()),
        ("raw", pa.string()),  # the provider's body, so a parser change re-pays nothing
        ("embeddings", pa.list_(pa.list_(pa.float32()))),
        ("run_id", pa.string()),
        ("finished_at", pa.timestamp("ms", tz="UTC")),
    ]
)
COLUMNS: tuple[str, ...] = tuple(STORE_SCHEMA.names)


class CallStore:
    """Append-only, content-addressed results of provider calls, on any pyarrow filesystem."""

    def __init__(self, uri: str) -> None:
        self.location = Location(uri).child(CALLS_DIR)
        self.location.makedirs()

    def write_shard(self, table: pa.Table) -> str:
        name = f"part-{time.time_ns()}-{uuid.uuid4().hex[:12]}.parquet"
        self.location.write_atomic(name, lambda sink: pq.write_table(table, sink, compression="zstd"))
        return name

    def shard_paths(self) -> list[str]:
        return self.location.list_files(suffix=".parquet")

    def dataset(self) -> pads.Dataset | None:
        paths = self.shard_paths()
        if not paths:
            return None
        return pads.dataset(paths, schema=STORE_SCHEMA, format="parquet", filesystem=self.location.fs)

    def scan(self, columns: list[str] | None = None) -> pl.LazyFrame:
        """All rows of all shards, lazily. Empty (with the store schema) when there are none."""
        ds = self.dataset()
        if ds is None:
            empty = pl.from_arrow(STORE_SCHEMA.empty_table())
            assert isinstance(empty, pl.DataFrame)
            return empty.lazy().select(columns) if columns else empty.lazy()
        lf = pl.scan_pyarrow_dataset(ds)
        return lf.select(columns) if columns else lf

    def spent_usd(self, run_id: str) -> float:
        """Dollars one run has paid so far (exact, survives kills)."""
        lf = self.scan(["run_id", "cost_usd"]).filter(pl.col("run_id") == run_id)
        return float(lf.select(pl.col("cost_usd").sum()).collect().item() or 0.0)

    def done_keys(self) -> pl.LazyFrame:
        """Keys that have a successful answer."""
        return self.scan(["key", "status"]).filter(pl.col("status") == "ok").select("key").unique()

    def answered_keys(self, *, include_failed: bool = False) -> np.ndarray:
        """Sorted keys with a stored answer (failures too if asked), as `S32`; test with `contains`.

        Compact on purpose: 32 bytes a key, searched with `np.searchsorted`, so finding
        pending work costs memory for the keys of the store, never for its rows.
        """
        keys = self.scan(["key", "status"])
        if not include_failed:
            keys = keys.filter(pl.col("status") == "ok")
        column = keys.select("key").collect()["key"]
        return np.unique(column.to_numpy().astype("S32")) if column.len() else np.empty(0, dtype="S32")

    def latest(self, keys: pl.LazyFrame | None = None, columns: list[str] | None = None) -> pl.LazyFrame:
        """One row per key: its success if it has one, else its latest failure."""
        cols = list(dict.fromkeys(["key", "status", "finished_at", *(columns or COLUMNS)]))
        lf = self.scan(cols)
        if keys is not None:
            lf = lf.join(keys.select("key").unique(), on="key", how="semi")
        return (
            lf.sort(["key", "status", "finished_at"], descending=[False, True, True])
            .unique("key", keep="first", maintain_order=True)
            .select(columns or COLUMNS)
        )


def contains(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Membership of `keys` (`S32`) in an array from `CallStore.answered_keys`, vectorised."""
    if not len(sorted_keys):
        return np.zeros(len(keys), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return sorted_keys[at] == keys
