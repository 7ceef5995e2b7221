"""Per-subset weighted k-center selections, run locally or as Ray tasks spread over a cluster.

Each configured subset's high-disagreement scenarios are selected independently, so
each subset is one task; on a cluster the tasks run on different nodes (SPREAD) and
share the embedding matrix through the object store (one `ray.put`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

from actors.errors import ConfigError
from jobs.analysis.diversity import DiverseSelection
from jobs.analysis.frames import frame
from jobs.analysis.kcenter import weighted_kcenter

SELECTION_SCHEMA = pa.schema(
    [
        pa.field("subset", pa.string(), nullable=False),
        pa.field("rank", pa.int64(), nullable=False),  # 0 = picked first
        pa.field("scenario_id", pa.string(), nullable=False),
        pa.field("d", pa.float64(), nullable=False),  # the weight: D(x, subset)
        pa.field("weighted_distance", pa.float64(), nullable=False),  # at selection; inf for rank 0
    ]
)
"""`tables/selections.parquet`, one frame with a subset column: the takeaway datasets."""

DIVERSE_SCHEMA = pa.schema(
    [
        pa.field("scenario_id", pa.string(), nullable=False),
        pa.field("diverse", pa.bool_(), nullable=False),
        pa.field("center_id", pa.string(), nullable=False),  # the kept scenario that covers this one
        pa.field("center_distance", pa.float32(), nullable=False),
    ]
)
"""`tables/diversity.parquet`: the δ-diverse flag and covering centre of every scenario."""


def diverse_table(scenario_ids: pl.Series, sel: DiverseSelection) -> pl.DataFrame:
    """The δ-selection as a table in DIVERSE_SCHEMA's columns."""
    return pl.DataFrame(
        {
            "scenario_id": scenario_ids,
            "diverse": sel.diverse,
            "center_id": scenario_ids.gather(sel.center),
            "center_distance": sel.center_distance,
        }
    )


@dataclass(frozen=True)
class SubsetSelection:
    """All subsets' selections, and the Ray node that ran each subset (None when local)."""

    table: pl.DataFrame
    nodes: dict[str, str | None]


def _select_one(
    x: np.ndarray, ids: pl.Series, d: np.ndarray, subset: str, threshold: float, k: int | None, seed: int
) -> tuple[pl.DataFrame, str | None]:
    res = weighted_kcenter(x, d, threshold=threshold, k=k, seed=seed)
    node: str | None = None
    try:
        import ray

        if ray.is_initialized():
            node = ray.get_runtime_context().get_node_id()
    except ImportError:
        node = None
    table = pl.DataFrame(
        {
            "subset": pl.Series([subset], dtype=pl.String).new_from_index(0, len(res.indices)),
            "rank": np.arange(len(res.indices), dtype=np.int64),
            "scenario_id": ids.gather(res.indices),
            "d": d[res.indices],
            "weighted_distance": res.weighted_distance,
        }
    )
    return table, node


def select_by_subset(
    embeddings: np.ndarray,
    scenario_ids: pl.Series,
    disagreement_table: pl.DataFrame,
    *,
    threshold: float = 0.8,
    k: int | None = None,
    seed: int = 0,
    use_ray: bool = False,
) -> SubsetSelection:
    """Disagreement-weighted k-center inside each subset's high-disagreement scenarios.

    Args:
        embeddings: (n x d) unit vectors, row i for scenario_ids[i].
        scenario_ids: the id of each embedding row.
        disagreement_table: `disagreement(...)` output (scenario_id, subset, d, high).
        threshold: stop once every weighted distance is below it (the paper's 0.8).
        k: optional cap on picks per subset.
        seed: tie-breaking seed.
        use_ray: run one Ray task per subset (SPREAD over nodes) instead of in this process.
    """
    if len(scenario_ids) != len(embeddings):
        raise ConfigError("scenario_ids: one id per embedding row is required")
    row = pl.DataFrame({"scenario_id": scenario_ids, "_row": np.arange(len(scenario_ids), dtype=np.int64)})
    high = disagreement_table.filter(pl.col("high").fill_null(False)).join(row, on="scenario_id", how="inner")
    subsets = high["subset"].unique(maintain_order=True).to_list()
    jobs = []
    for name in subsets:
        part = high.filter(pl.col("subset") == name)
        jobs.append((name, part["_row"].to_numpy(), part["d"].to_numpy(), part["scenario_id"]))
    results: list[tuple[pl.DataFrame, str | None]]
    if use_ray:
        import ray

        remote = ray.remote(num_cpus=1, scheduling_strategy="SPREAD")(_select_rows)
        ref = ray.put(np.ascontiguousarray(embeddings, dtype=np.float32))
        results = ray.get(
            [remote.remote(ref, rows, ids, d, n, threshold, k, seed) for n, rows, d, ids in jobs]
        )
    else:
        results = [_select_rows(embeddings, rows, ids, d, n, threshold, k, seed) for n, rows, d, ids in jobs]
    frames = [t for t, _ in results]
    table = pl.concat(frames) if frames else frame([], SELECTION_SCHEMA)
    return SubsetSelection(
        table=table, nodes={n: node for (n, *_), (_, node) in zip(jobs, results, strict=True)}
    )


def _select_rows(
    embeddings: np.ndarray,
    rows: np.ndarray,
    ids: pl.Series,
    d: np.ndarray,
    subset: str,
    threshold: float,
    k: int | None,
    seed: int,
) -> tuple[pl.DataFrame, str | None]:
    """One subset's selection (a Ray task body when run remotely)."""
    return _select_one(embeddings[rows], ids, d, subset, threshold, k, seed)
