"""Embeddings of a text column as a Ray Data pipeline that fills the embedding cache.

The work runs as `map_batches` over a class UDF in an actor pool, so the model loads once
per actor, not once per batch. Results are streamed into cache shards as they arrive, so
a killed run keeps what it finished and a rerun embeds only texts never embedded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from actors.errors import ConfigError
from jobs.analysis.embed.backends import BackendSpec, make_embed_fn
from jobs.analysis.embed.cache import EmbeddingCache, text_hash, to_fixed_list, vector_metadata

log = logging.getLogger("specstress.embed")

LOG_EVERY_S = 10.0
"""Seconds between progress lines while texts are embedded."""


@dataclass(frozen=True)
class EmbedStats:
    """Counts of one `embed_column` call: cache hits are texts that were not embedded again."""

    n_rows: int
    n_unique: int
    n_cached: int
    n_embedded: int
    seconds: float


class EmbedBatches:
    """Ray Data class UDF: builds the backend once per actor, then embeds each batch."""

    def __init__(self, spec: BackendSpec, model_batch_size: int = 64) -> None:
        self.fn = make_embed_fn(spec, batch_size=model_batch_size)

    def __call__(self, batch: pa.Table) -> pa.Table:
        vecs = self.fn(batch.column("text").to_pylist())
        return pa.table({"text_hash": batch.column("text_hash"), "embedding": to_fixed_list(vecs)})


def by_length(table: pa.Table) -> pa.Table:
    """Rows ordered by text length.

    A model call pads every text of a batch to the longest one, so batches of similar
    lengths waste less compute; sentence-transformers sorts this way within one call,
    and the pipeline's batches get the same benefit only if the rows arrive sorted.
    """
    return table.take(pc.sort_indices(pc.utf8_length(table.column("text"))))


def embedding_dataset(
    table: pa.Table, spec: BackendSpec, *, num_actors: int, batch_size: int, num_cpus: float
) -> Any:
    """A Ray Dataset embedding `table` (text_hash, text) in an actor pool, rows sorted by length.

    Ray Data's own progress bars are turned off: on a 2-core machine their redraws cost
    several percent of the throughput, and the stage logs its progress itself.
    """
    import ray

    ray.data.DataContext.get_current().enable_progress_bars = False
    table = by_length(table)
    rows_per_block = max(batch_size, -(-table.num_rows // max(4 * num_actors, 1)))
    blocks = [table.slice(s, rows_per_block) for s in range(0, table.num_rows, rows_per_block)]
    return ray.data.from_arrow(blocks).map_batches(
        EmbedBatches,
        fn_constructor_kwargs={"spec": spec},
        batch_size=batch_size,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=num_actors),
        num_cpus=num_cpus,
        num_gpus=spec.gpus,
    )


def _embed_missing_ray(
    missing: pa.Table,
    spec: BackendSpec,
    cache: EmbeddingCache,
    num_actors: int,
    batch_size: int,
    num_cpus: float,
) -> int:
    """Embed `missing` (text_hash, text) with Ray Data and stream the results into cache shards."""
    ds = embedding_dataset(missing, spec, num_actors=num_actors, batch_size=batch_size, num_cpus=num_cpus)
    pending: list[pa.Table] = []
    n_pending = n_done = 0
    last_log = time.monotonic()
    for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
        pending.append(batch)
        n_pending += batch.num_rows
        if n_pending >= 4 * batch_size:
            cache.write(pa.concat_tables(pending))
            n_done += n_pending
            pending, n_pending = [], 0
            if time.monotonic() - last_log >= LOG_EVERY_S:
                log.info("embedded %d/%d texts (%s %s)", n_done, missing.num_rows, spec.kind, spec.model)
                last_log = time.monotonic()
    if pending:
        cache.write(pa.concat_tables(pending))
        n_done += n_pending
    return n_done


def _embed_missing_local(missing: pa.Table, spec: BackendSpec, cache: EmbeddingCache, batch_size: int) -> int:
    """The same without Ray (small inputs, tests of the pure parts)."""
    udf = EmbedBatches(spec)
    for s in range(0, missing.num_rows, 4 * batch_size):
        cache.write(udf(missing.slice(s, 4 * batch_size)))
    return missing.num_rows


def embed_column(
    df: pl.DataFrame,
    column: str,
    *,
    spec: BackendSpec,
    cache_dir: str | Path,
    num_actors: int = 1,
    batch_size: int = 256,
    num_cpus_per_actor: float = 1.0,
    use_ray: bool = True,
) -> tuple[pa.Table, EmbedStats]:
    """Embed `df[column]`, reusing every cached vector; return df plus `text_hash` and `embedding`.

    Args:
        df: any table with a text column.
        column: the text column (nulls are an error: they have no embedding).
        spec: the backend.
        cache_dir: root of the embedding cache (shared across runs).
        num_actors: Ray Data actor-pool size.
        batch_size: rows per UDF call.
        num_cpus_per_actor: CPUs Ray reserves per actor (set `spec.threads` to match).
        use_ray: False embeds in this process (no Ray).

    Returns:
        The Arrow table (backend, model and dim in its schema metadata) and the counts.
    """
    t0 = time.perf_counter()
    if column not in df.columns:
        raise ConfigError(f"column: {column!r} is not in the table (columns: {df.columns})")
    if df[column].null_count():
        raise ConfigError(f"column {column!r}: {df[column].null_count()} null texts")
    cache = EmbeddingCache(cache_dir, spec)
    hashed = df.with_columns(text_hash(df[column]))
    unique = hashed.select("text_hash", pl.col(column).alias("text")).unique("text_hash", maintain_order=True)
    cached = cache.hashes()
    missing = unique.filter(~pl.col("text_hash").is_in(cached.implode()))
    n_new = 0
    if missing.height:
        missing_arrow = missing.to_arrow()
        if use_ray:
            n_new = _embed_missing_ray(missing_arrow, spec, cache, num_actors, batch_size, num_cpus_per_actor)
        else:
            n_new = _embed_missing_local(missing_arrow, spec, cache, batch_size)
    vectors = cache.read()
    assert vectors is not None  # every text is cached by now
    vec_df = pl.from_arrow(vectors.select(["text_hash"])).with_row_index("_v")
    joined = hashed.join(vec_df, on="text_hash", how="left", maintain_order="left")
    if joined["_v"].null_count():
        raise ConfigError(f"column {column!r}: {joined['_v'].null_count()} texts came back without a vector")
    emb = vectors.column("embedding").take(pa.array(joined["_v"].to_numpy()))
    out = joined.drop("_v").to_arrow().append_column("embedding", emb)
    dim = out.schema.field("embedding").type.list_size
    out = out.replace_schema_metadata(vector_metadata(spec, dim))
    stats = EmbedStats(
        n_rows=df.height,
        n_unique=unique.height,
        n_cached=unique.height - missing.height,
        n_embedded=n_new,
        seconds=time.perf_counter() - t0,
    )
    return out, stats


def pipeline_throughput(
    texts: Sequence[str], *, num_actors: int = 1, threads: int | None = None, batch_size: int = 256
) -> tuple[float, float, float]:
    """Embeddings/s of the Ray Data pipeline on `texts` (cache bypassed).

    Returns:
        (steady rate: rows after the first result batch / time since it arrived,
        end-to-end rate including actor start and model load, startup seconds).
    """
    table = pa.table({"text_hash": [str(i) for i in range(len(texts))], "text": list(texts)})
    spec = BackendSpec(kind="local", threads=threads)
    ds = embedding_dataset(table, spec, num_actors=num_actors, batch_size=batch_size, num_cpus=threads or 1)
    t0 = time.perf_counter()
    first_t: float | None = None
    first_rows = n = 0
    for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
        n += batch.num_rows
        if first_t is None:
            first_t, first_rows = time.perf_counter(), batch.num_rows
    end = time.perf_counter()
    assert first_t is not None
    steady = (n - first_rows) / max(end - first_t, 1e-9)
    return steady, n / (end - t0), first_t - t0
