"""Embeddings: every scenario's query as a unit vector (METHOD.md §2, DESIGN.md "Analysis at scale").

Backends (`stages.embeddings.backend`):
- `local`: the packaged all-MiniLM-L6-v2 (the `embed` extra) in a Ray Data actor pool;
- `api`: a model key of the registry (an openai or gemini wire format model). Texts go
  to the fan-out engine as embed calls of `batch_size` inputs, so limits, the call store,
  budget and resume apply as for any call;
- `hashing`: the dependency-free bag-of-words embedder, for machines without torch.

Every backend shares one text-hash cache (`jobs.analysis.embed.cache.EmbeddingCache`) under
`<cache_dir>/embeddings/`, one folder per backend and model: a rerun, or a run that adds
scenarios, embeds only texts never embedded. For `api` the folder names the provider,
model id and endpoint, so repointing a model key never reuses another model's vectors.

Output: `tables/scenario_embeddings.parquet` (scenario_id, embedding as
fixed_size_list<float32>[d], unit-normalised), sorted by scenario_id; backend, model and
dimension are in the Parquet schema metadata. A text whose embed call failed (after the
engine's retries) has no row; the summary counts it and a rerun retries it.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from actors.errors import ConfigError, SpecstressError
from actors.types import CallSpec, spec_to_json
from jobs.analysis.embed.backends import LOCAL_MODEL, BackendSpec, normalise
from jobs.analysis.embed.cache import (
    META_BACKEND,
    META_DIM,
    META_MODEL,
    EmbeddingCache,
    text_hash,
    to_fixed_list,
    to_matrix,
)
from jobs.analysis.embed.pipeline import embed_column
from jobs.stages.base import Plan, Stage, StageContext
from jobs.stages.devices import require_gpu
from jobs.stages.settings.base import ModelView
from jobs.stages.settings.embeddings import STAGE_SPEC, TABLE, EmbeddingsConf
from jobs.stages.streaming import iter_results, scan_table
from jobs.stages.unusable import NothingValid, explain

log = logging.getLogger("specstress.embeddings")

META_MODEL_KEY = b"embedding_model_key"


def embeddings_schema(dim: int, backend: str, model: str, model_key: str = "") -> pa.Schema:
    """The output table's schema for vectors of `dim`, with backend and model in its metadata."""
    return pa.schema(
        [
            pa.field("scenario_id", pa.string(), nullable=False),
            pa.field("embedding", pa.list_(pa.float32(), dim), nullable=False),
        ],
        metadata={
            META_BACKEND: backend.encode(),
            META_MODEL: model.encode(),
            META_MODEL_KEY: model_key.encode(),
            META_DIM: str(dim).encode(),
        },
    )


def _ready(ctx: StageContext[Any], ec: EmbeddingsConf, key: str) -> None:
    """What only a running stage can check: a GPU for `device: cuda`, the model known to the engine."""
    if ec.device != "cpu":
        require_gpu(f"{key}.device", ec.device, autoscaled=ctx.cluster)
        if ec.backend != "local":
            raise ConfigError(
                f"config key '{key}.device': only the local backend runs on a device, not '{ec.backend}'"
            )
    if ec.backend == "api" and ec.model:
        ctx.calls.check_models([ec.model])


def cache_root(ctx: StageContext[Any], ec: EmbeddingsConf) -> str:
    """Where the text-hash cache lives: a local path or a URI, like the call store."""
    return ec.cache_dir or f"{ctx.cache_root.rstrip('/')}/embeddings"


def _embed_params(m: ModelView) -> tuple[tuple[str, Any], ...]:
    """The registry params an embed call carries: the vector size, where the model entry sets one."""
    return (("dimensions", m.params["dimensions"]),) if "dimensions" in m.params else ()


def _api_spec(ctx: StageContext[Any], model_key: str) -> BackendSpec:
    """The cache identity of an API model: provider, model id, vector size if set, a hash of the endpoint."""
    m = ctx.model(model_key)
    where = hashlib.blake2b(m.base_url.rstrip("/").encode(), digest_size=4).hexdigest()
    size = "".join(f"-d{d}" for _, d in _embed_params(m))
    return BackendSpec(kind="api", model=f"{m.provider}-{m.model_id}{size}-{where}")


def _api_requests(
    ctx: StageContext[Any], ec: EmbeddingsConf, missing: pl.DataFrame
) -> Iterator[pl.DataFrame]:
    """One embedding call per `batch_size` texts of `missing` (text_hash, text)."""
    model = ec.model or ""
    params = _embed_params(ctx.model(model))
    for s in range(0, missing.height, ec.batch_size):
        part = missing.slice(s, ec.batch_size)
        spec = CallSpec(model=model, kind="embed", inputs=tuple(part["text"].to_list()), params=params)
        yield pl.DataFrame(
            {"model": [model], "spec": [spec_to_json(spec)], "hashes": [part["text_hash"].to_list()]}
        )


def _embed_api(
    ctx: StageContext[Any], ec: EmbeddingsConf, missing: pl.DataFrame, cache: EmbeddingCache, name: str
) -> dict[str, Any]:
    """Embed `missing` (text_hash, text) through the engine, streaming the vectors into the cache."""
    model = ec.model or ""
    path = ctx.calls.write_requests(name, _api_requests(ctx, ec, missing))
    out: dict[str, Any] = {"embedded": 0, "failed": 0, "calls": ctx.calls.run(name, path).as_dict()}
    batch_rows = max(1, 8192 // ec.batch_size)
    for part in iter_results(ctx.calls, name, path, ["status", "embeddings"], batch_rows):
        good = (pl.col("status") == "ok") & (
            pl.col("embeddings").list.len().fill_null(-1) == pl.col("hashes").list.len()
        )
        out["failed"] += int(part.filter(~good)["hashes"].list.len().sum() or 0)
        rows = part.filter(good).select("hashes", "embeddings").explode("hashes", "embeddings")
        if rows.is_empty():
            continue
        lengths = rows["embeddings"].list.len()
        dim = int(lengths.max() or 0)
        if lengths.min() != dim or dim == 0:
            raise SpecstressError(f"embeddings: model '{model}' returned vectors of different or zero sizes")
        flat = rows["embeddings"].to_arrow().flatten().to_numpy(zero_copy_only=False)
        matrix = normalise(flat.reshape(-1, dim))
        cache.write(pa.table({"text_hash": rows["hashes"].to_arrow(), "embedding": to_fixed_list(matrix)}))
        out["embedded"] += rows.height
    if out["failed"]:
        log.warning("embeddings: %d texts got no vector (calls failed); a rerun retries them", out["failed"])
    return out


@dataclass(frozen=True)
class _Texts:
    """Texts keyed by their hash, with those the api backend's cache lacks."""

    cache: EmbeddingCache
    hashed: pl.DataFrame
    """The input rows (scenario_id, query) with their `text_hash`."""
    unique: int
    missing: pl.DataFrame
    """(text_hash, text) of the texts to embed, in hash order."""


def _texts(ctx: StageContext[Any], ec: EmbeddingsConf, scen: pl.DataFrame) -> _Texts:
    assert ec.model is not None
    cache = EmbeddingCache(cache_root(ctx, ec), _api_spec(ctx, ec.model))
    hashed = scen.with_columns(text_hash(scen["query"]))
    texts = hashed.select("text_hash", text="query").unique("text_hash", maintain_order=True)
    missing = texts.filter(~pl.col("text_hash").is_in(cache.hashes().implode())).sort("text_hash")
    return _Texts(cache, hashed, texts.height, missing)


def api_plan(ctx: StageContext[Any], ec: EmbeddingsConf, texts: list[str]) -> Iterator[pl.DataFrame]:
    """The embedding calls `embed_texts` would make for `texts` (none for the local backends)."""
    if ec.backend != "api":
        return iter(())
    return _api_requests(ctx, ec, _texts(ctx, ec, _as_rows(texts)).missing)


def _api_vectors(
    ctx: StageContext[Any], ec: EmbeddingsConf, scen: pl.DataFrame, name: str = "embeddings"
) -> tuple[pl.Series, pa.Array, dict[str, Any]]:
    """Scenario ids, their vectors (texts whose calls failed left out) and the summary of the api backend."""
    assert ec.model is not None
    t = _texts(ctx, ec, scen)
    cache, hashed, missing = t.cache, t.hashed, t.missing
    done = (
        _embed_api(ctx, ec, missing, cache, name)
        if missing.height
        else {"embedded": 0, "failed": 0, "calls": {}}
    )
    vectors = cache.read()
    if vectors is None:
        raise SpecstressError("embeddings: no text got a vector; see the engine's failures in the manifest")
    index = pl.DataFrame({"text_hash": vectors.column("text_hash").to_pylist()}).with_row_index("_v")
    joined = hashed.select("scenario_id", "text_hash").join(
        index, on="text_hash", how="inner", maintain_order="left"
    )
    emb = vectors.column("embedding").take(pa.array(joined["_v"].to_numpy())).combine_chunks()
    info = {
        "model": ctx.model(ec.model).model_id,
        "model_key": ec.model,
        "unique_texts": t.unique,
        "cached": t.unique - missing.height,
        **done,
    }
    return joined["scenario_id"], emb, info


def _ray_vectors(
    ec: EmbeddingsConf, scen: pl.DataFrame, root: str
) -> tuple[pl.Series, pa.Array, dict[str, Any]]:
    """Scenario ids, vectors and summary of the local or hashing backend (a Ray Data actor pool)."""
    model = LOCAL_MODEL if ec.backend == "local" else "hashing-384"
    spec = BackendSpec(kind=ec.backend, model=model, threads=ec.threads, device=ec.device)  # type: ignore[arg-type]
    table, stats = embed_column(
        scen,
        "query",
        spec=spec,
        cache_dir=root,
        num_actors=ec.num_actors,
        batch_size=ec.batch_size,
        num_cpus_per_actor=float(ec.threads or 1),
    )
    ids = pl.Series("scenario_id", table.column("scenario_id").to_pylist(), dtype=pl.String)
    info = {
        "model": model,
        "model_key": "",
        "unique_texts": stats.n_unique,
        "cached": stats.n_cached,
        "embedded": stats.n_embedded,
        "failed": 0,
    }
    return ids, table.column("embedding").combine_chunks(), info


def _scenarios(ctx: StageContext[EmbeddingsConf]) -> pl.DataFrame:
    return scan_table(ctx.run, "scenarios").select("scenario_id", "query").collect().sort("scenario_id")


def plan(ctx: StageContext[EmbeddingsConf]) -> Plan:
    """The api backend's calls for the queries its cache lacks, once the scenarios exist."""
    ec = ctx.settings
    if ec.backend != "api" or not ctx.run.tables.exists("scenarios.parquet"):
        return {}
    return {"embeddings": _api_requests(ctx, ec, _texts(ctx, ec, _scenarios(ctx)).missing)}


def run(ctx: StageContext[EmbeddingsConf]) -> dict[str, Any]:
    """Stage entry point: embed `scenarios.query`, write `tables/scenario_embeddings.parquet`."""
    ec = ctx.settings
    _ready(ctx, ec, "stages.embeddings")
    scen = _scenarios(ctx)
    if scen.is_empty():
        raise NothingValid("no scenario was kept to embed: " + explain(ctx.run, ["scenario_rejects"]))
    if ec.backend == "api":
        ids, emb, info = _api_vectors(ctx, ec, scen)
    else:
        ids, emb, info = _ray_vectors(ec, scen, cache_root(ctx, ec))
    dim = emb.type.list_size
    schema = embeddings_schema(dim, ec.backend, info["model"], info["model_key"])
    out = pa.table({"scenario_id": ids.to_arrow(), "embedding": emb}).cast(schema)
    ctx.run.tables.write_atomic(
        f"{TABLE}.parquet", lambda sink: pq.write_table(out, sink, compression="zstd")
    )
    return {"backend": ec.backend, "scenarios": scen.height, **info, "rows": out.num_rows, "dim": dim}


def _as_rows(texts: list[str]) -> pl.DataFrame:
    """Any texts as (scenario_id, query) rows, their position standing in for the id."""
    return pl.DataFrame({"scenario_id": [str(i) for i in range(len(texts))], "query": texts})


def embed_texts(
    ctx: StageContext[Any], ec: EmbeddingsConf, texts: list[str], name: str, key: str
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Unit vectors of any `texts` with the configured backend, sharing the text-hash cache.

    `name` names the engine requests of the api backend and `key` the settings' config key.
    Returns the positions in `texts` that got a vector (an api call that failed leaves its
    texts out), their (n x d) matrix and the backend's summary.
    """
    _ready(ctx, ec, key)
    df = _as_rows(texts)
    if ec.backend == "api":
        ids, emb, info = _api_vectors(ctx, ec, df, name)
    else:
        ids, emb, info = _ray_vectors(ec, df, cache_root(ctx, ec))
    return ids.cast(pl.Int64).to_numpy(), to_matrix(emb), info


def read_embeddings(ctx: StageContext[Any]) -> tuple[pl.Series, np.ndarray, dict[str, str]]:
    """The scenario ids, the (n x d) float32 matrix and the metadata of `scenario_embeddings`."""
    if not ctx.run.tables.exists(f"{TABLE}.parquet"):
        raise SpecstressError(f"table '{TABLE}' is missing from {ctx.run.tables.path}: run its stage first")
    with ctx.run.root.fs.open_input_file(ctx.run.table_path(TABLE)) as src:
        table = pq.read_table(src)
    col = table.column("embedding").combine_chunks()
    d = col.type.list_size
    matrix = col.flatten().to_numpy(zero_copy_only=False).reshape(-1, d).astype(np.float32, copy=False)
    meta = {
        k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items() if k.startswith(b"embedding")
    }
    return pl.Series("scenario_id", table.column("scenario_id").to_pylist(), dtype=pl.String), matrix, meta


STAGE = Stage(STAGE_SPEC, run=run, plan=plan)
