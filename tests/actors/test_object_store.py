"""The run directory's storage on a real S3-compatible server (moto, on loopback): no rename there."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import polars as pl
import pyarrow.parquet as pq
import pytest

from actors.storage import Location
from tests.s3server import s3_bucket


@pytest.fixture(scope="module")
def bucket() -> Iterator[str]:
    with s3_bucket() as uri:
        yield uri


def _row(key: str) -> dict[str, object]:
    return {"key": key, "model": "m", "status": "ok", "attempts": 1, "finished_at": datetime.now(UTC)}


def test_a_failed_write_leaves_no_object_and_a_good_one_is_whole(bucket: str) -> None:
    loc = Location(f"{bucket}/t1")
    assert not loc.is_local
    loc.makedirs()

    def half_then_fail(sink: object) -> None:
        sink.write(b"PAR1 half a shard")  # type: ignore[attr-defined]
        raise RuntimeError("writer died")

    with pytest.raises(RuntimeError, match="writer died"):
        loc.write_atomic("part-1.parquet", half_then_fail)
    assert loc.list_files() == []
    loc.write_text("note.txt", "whole")
    assert loc.read_text("note.txt") == "whole"
    assert [p.rsplit("/", 1)[-1] for p in loc.list_files()] == ["note.txt"]


def test_parquet_reads_through_the_location(bucket: str) -> None:
    loc = Location(f"{bucket}/tables")
    loc.makedirs()
    df = pl.DataFrame({"key": ["x", "y", "z"], "n": [1, 2, 3]})
    loc.write_atomic("t.parquet", lambda sink: pq.write_table(df.to_arrow(), sink))
    path = loc.join("t.parquet")
    assert loc.scan_parquet(path).filter(pl.col("n") > 1).collect()["key"].to_list() == ["y", "z"]
    assert loc.parquet_file(path).metadata.num_rows == 3


def test_embedding_cache_on_s3_keeps_vectors_by_text_hash(bucket: str) -> None:
    import numpy as np
    import pyarrow as pa

    from jobs.analysis.embed.backends import BackendSpec
    from jobs.analysis.embed.cache import EmbeddingCache, to_fixed_list

    spec = BackendSpec(kind="hashing", model="hashing-4")
    cache = EmbeddingCache(f"{bucket}/cache/embeddings", spec)
    vectors = np.eye(3, 4, dtype=np.float32)
    cache.write(pa.table({"text_hash": ["a", "b", "c"], "embedding": to_fixed_list(vectors)}))
    cache.write(pa.table({"text_hash": ["c", "d"], "embedding": to_fixed_list(vectors[:2])}))
    assert len(cache.shards()) == 2
    assert sorted(cache.hashes()) == ["a", "b", "c", "d"]
    again = EmbeddingCache(f"{bucket}/cache/embeddings", spec).read()  # another run, same prefix
    assert again is not None and sorted(again["text_hash"].to_pylist()) == ["a", "b", "c", "d"]
