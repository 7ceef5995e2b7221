"""Embeddings of any text column: backends, a content-addressed cache, a Ray Data pipeline.

- `backends`: which embedder runs (local sentence-transformers model, an API `EmbedFn`,
  or the dependency-free hashing embedder) and the bare model's throughput; numpy only at
  import, so a GPU box without the table stack can still load it.
- `cache`: the vectors' Arrow column format and the Parquet shards keyed by text hash.
- `pipeline`: `embed_column`, an actor-pool `map_batches` that fills the cache with the
  texts it lacks, and the pipeline's throughput.
"""
