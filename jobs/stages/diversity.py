"""Diversity: the δ-diverse set of scenarios over their query embeddings (METHOD.md §2).

`jobs.analysis.diversity.delta_select` gives the paper's guarantees (every scenario lies
within δ of a kept one; kept ones are pairwise more than δ apart), seeded by the run seed.

Output: `tables/diversity.parquet` (scenario_id, diverse, center_id, center_distance):
the flag, plus the kept scenario that covers each one, so a user sees what each kept
query stands for. The summary reports an exact coverage and separation check on a seeded
sample of `check_sample` scenarios.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from jobs.analysis.diversity import DiverseSelection, check_selection, delta_select
from jobs.analysis.selection import DIVERSE_SCHEMA, diverse_table
from jobs.stages.base import Stage, StageContext
from jobs.stages.devices import require_gpu
from jobs.stages.embeddings import read_embeddings
from jobs.stages.settings.diversity import STAGE_SPEC, TABLE, DiversityConf
from jobs.stages.tables import write_table


def _select_on_gpu(x: np.ndarray, delta: float, seed: int, device: str) -> DiverseSelection:
    """`delta_select_torch` in a Ray task holding one GPU, wherever the cluster has one."""
    import ray

    from jobs.analysis.diversity_torch import delta_select_torch

    task = ray.remote(num_gpus=1, num_cpus=1)(delta_select_torch)
    return ray.get(task.remote(x, delta=delta, seed=seed, device=device))


def run(ctx: StageContext[DiversityConf]) -> dict[str, Any]:
    """Stage entry point: select the δ-diverse scenarios, write `tables/diversity.parquet`."""
    dc = ctx.settings
    if dc.device != "cpu":
        require_gpu("stages.diversity.device", dc.device, autoscaled=ctx.cluster)
    ids, x, meta = read_embeddings(ctx)
    t0 = time.perf_counter()
    if dc.device == "cpu":
        sel = delta_select(x, delta=dc.delta, seed=ctx.seed, n_cells=dc.n_cells)
    else:
        sel = _select_on_gpu(x, dc.delta, ctx.seed, dc.device)
    seconds = time.perf_counter() - t0
    write_table(ctx.run, TABLE, diverse_table(ids, sel), DIVERSE_SCHEMA)
    summary: dict[str, Any] = {
        "scenarios": len(ids),
        "diverse": int(sel.diverse.sum()),
        "delta": dc.delta,
        "n_cells": sel.n_cells,
        "device": dc.device,
        "seconds": round(seconds, 3),
        "embedding_model": meta.get("embedding_model"),
    }
    if dc.check_sample and len(ids):
        coverage, separation = check_selection(x, sel, delta=dc.delta, sample=dc.check_sample, seed=ctx.seed)
        summary.update(coverage_ok=coverage, separation_ok=separation)
    return summary


STAGE = Stage(STAGE_SPEC, run=run)
