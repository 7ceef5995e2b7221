"""Value expression analysis: phrases to taxonomy categories, counts and co-occurrence (METHOD.md §6).

- Matching: each phrase vector goes to the nearest category vector by inner product on
  unit vectors (FAISS `IndexFlatIP`, exact). The kept distance is the L2 distance of the
  two unit vectors, sqrt(2 - 2 cos), the metric the diversity stage's δ uses, so weak
  matches can be filtered by one threshold.
- Counts: per model and category, the responses (scenario, model) that show the category
  at least once.
- Co-occurrence over the `top` categories by count: per ordered pair of distinct models
  (A, B), P(B shows Y | A shows X) is the share of the scenarios where both answered and A
  shows X in which B shows Y (`pair_cooccurrence`, the paper's view). The pooled table sums
  those counts over every ordered pair: the share of (scenario, A, B) with A showing X in
  which B shows Y (`pooled_cooccurrence`), so both come from one pass over the rows.
"""

from __future__ import annotations

import faiss
import numpy as np
import polars as pl
import pyarrow as pa

EXPRESSIONS_SCHEMA = pa.schema(
    [
        pa.field("scenario_id", pa.string(), nullable=False),
        pa.field("model", pa.string(), nullable=False),
        pa.field("phrase", pa.string(), nullable=False),
        pa.field("category", pa.string(), nullable=False),  # nearest level-2 category
        pa.field("distance", pa.float64(), nullable=False),  # L2 between unit vectors, 0..2
    ]
)
COUNTS_SCHEMA = pa.schema(
    [
        pa.field("model", pa.string(), nullable=False),
        pa.field("category", pa.string(), nullable=False),
        pa.field("count", pa.int64(), nullable=False),
    ]
)
COOCCURRENCE_SCHEMA = pa.schema(
    [
        pa.field("category_a", pa.string(), nullable=False),
        pa.field("category_b", pa.string(), nullable=False),
        pa.field("p", pa.float64(), nullable=False),
    ]
)
PAIR_COOCCURRENCE_SCHEMA = pa.schema(
    [
        pa.field("model_a", pa.string(), nullable=False),
        pa.field("model_b", pa.string(), nullable=False),
        pa.field("category_a", pa.string(), nullable=False),
        pa.field("category_b", pa.string(), nullable=False),
        pa.field("n", pa.int64(), nullable=False),  # scenarios both answered where model_a shows category_a
        pa.field("p", pa.float64(), nullable=False),  # share of those where model_b shows category_b
    ]
)


def nearest(phrases: np.ndarray, categories: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index of the nearest category, L2 distance) per phrase row; rows are unit vectors."""
    if phrases.shape[0] == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
    index = faiss.IndexFlatIP(categories.shape[1])
    index.add(np.ascontiguousarray(categories, dtype=np.float32))
    sims, idx = index.search(np.ascontiguousarray(phrases, dtype=np.float32), 1)
    dist = np.sqrt(np.clip(2.0 - 2.0 * sims[:, 0].astype(np.float64), 0.0, None))
    return idx[:, 0].astype(np.int64), dist


def category_counts(expressions: pl.DataFrame) -> pl.DataFrame:
    """(model, category, count): responses of each model showing each category, most first."""
    return (
        expressions.select("scenario_id", "model", "category")
        .unique()
        .group_by("model", "category")
        .agg(pl.len().cast(pl.Int64).alias("count"))
        .sort(["model", "count", "category"], descending=[False, True, False])
    )


def pair_cooccurrence(expressions: pl.DataFrame, present: pl.DataFrame, top: int) -> pl.DataFrame:
    """P(model B shows b | model A shows a) per ordered model pair over the `top` categories (see module doc).

    Args:
        expressions: (scenario_id, model, category) rows.
        present: (scenario_id, model): the responses compared in each scenario, whether
            or not any value was listed for them.
        top: how many categories, by total count, the matrices cover.

    Every (model_a, model_b, category_a) with n > 0 has a row for each kept category_b,
    zeros included, so a reader sees a full matrix.
    """
    shows = expressions.select("scenario_id", "model", "category").unique()
    ranked = shows.group_by("category").len().sort(["len", "category"], descending=[True, False])
    keep = ranked.head(top)["category"]
    shows = shows.filter(pl.col("category").is_in(keep.implode()))
    pairs = shows.rename({"model": "model_a", "category": "category_a"}).join(
        present.select("scenario_id", model_b="model").unique(), on="scenario_id"
    )
    pairs = pairs.filter(pl.col("model_a") != pl.col("model_b"))
    given = ["model_a", "model_b", "category_a"]
    den = pairs.group_by(given).agg(pl.len().cast(pl.Int64).alias("n"))
    hits = pairs.join(
        shows.rename({"model": "model_b", "category": "category_b"}), on=["scenario_id", "model_b"]
    )
    num = hits.group_by([*given, "category_b"]).len("k")
    return (
        den.join(pl.DataFrame({"category_b": keep}), how="cross")
        .join(num, on=[*given, "category_b"], how="left")
        .select(*given, "category_b", "n", p=pl.col("k").fill_null(0) / pl.col("n"))
        .sort(*given, "category_b")
    )


def pooled_cooccurrence(pairs: pl.DataFrame) -> pl.DataFrame:
    """P(another model shows b | a model shows a) from `pair_cooccurrence`'s table, over every pair."""
    return (
        pairs.group_by("category_a", "category_b")
        .agg(((pl.col("p") * pl.col("n")).round().sum() / pl.col("n").sum()).alias("p"))
        .sort("category_a", "category_b")
    )
