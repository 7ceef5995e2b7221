"""The embedding cache and the Arrow form of its vectors.

- Vectors are unit-normalised float32, stored as `fixed_size_list<float32>[d]`; the
  backend, model and dimension go into the Parquet schema metadata.
- One folder per (backend, model) of Parquet shards keyed by a hash of the text. Shards
  are written to a temporary name and renamed, so a killed run keeps what it finished and
  a rerun embeds only texts never embedded.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from actors.storage import Location
from jobs.analysis.embed.backends import BackendSpec

CACHE_SCHEMA_FIELDS = ("text_hash", "embedding")
META_BACKEND = b"embedding_backend"
META_MODEL = b"embedding_model"
META_DIM = b"embedding_dim"


def vector_metadata(spec: BackendSpec, dim: int) -> dict[bytes, bytes]:
    """Schema metadata naming the backend, model and dimension of a table's vectors."""
    return {META_BACKEND: spec.kind.encode(), META_MODEL: spec.model.encode(), META_DIM: str(dim).encode()}


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
        meta = vector_metadata(self.spec, table.schema.field("embedding").type.list_size)
        table = table.select(list(CACHE_SCHEMA_FIELDS)).replace_schema_metadata(meta)
        name = f"shard-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"
        self.dir.write_atomic(name, lambda sink: pq.write_table(table, sink, compression="zstd"))
        return self.dir.join(name)
