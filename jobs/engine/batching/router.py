"""Routing of a stage's pending calls through the providers' batch APIs, with durable records.

The engine hands `BatchRouter.route` the pending calls of a stage, split per model into
local Parquet files (key, spec). `route` yields the parts that go online, in turn:

1. the calls of models that stay online now (mode online, no batch API, or `auto` with a
   deadline too short for batch), minus every call that sits in a live batch; the models
   routed to batch are submitted (records first, see `records.py`) before this is yielded,
   so the providers work while the engine makes the online calls;
2. once every batch has ended, or `auto`'s deadline calls the stragglers in, the calls no
   batch answered: expired, cancelled and failed-but-retryable items, exactly those.

Batch answers are parsed by the online adapters and written to the same call store, with
the same keys and schema, at the batch price; later stages cannot tell the path apart.
Which models go to batch is `decide.py`'s; the providers' side is `runner.py`'s.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterator

import polars as pl
import pyarrow as pa

from actors.store import CallStore
from actors.types import Endpoint
from jobs.conf.batching import routing_for
from jobs.conf.schema import RunConf
from jobs.engine.batching.decide import Load, batch_models, chunks
from jobs.engine.batching.runner import BatchFigures, BatchRunner, StageRun
from jobs.engine.pending import Pending
from jobs.engine.rundir import RunDir


class BatchRouter:
    """Decides per stage and model what goes to batch, runs the batches, returns what is left."""

    def __init__(
        self, conf: RunConf, run: RunDir, store: CallStore, endpoints: dict[str, Endpoint], run_id: str
    ) -> None:
        self.conf = conf
        self.endpoints = endpoints
        self.runner = BatchRunner(conf, run, store, endpoints, run_id)

    def route(
        self,
        stage: str,
        pending: Pending,
        scratch: str,
        figures: BatchFigures,
        on_rows: Callable[[pa.RecordBatch], None],
    ) -> Iterator[Pending]:
        """Yield the parts to make online, running the batch part between them (module doc)."""
        sr = StageRun(stage, routing_for(self.conf.stages, stage), pending, figures, on_rows)
        sr.live = self.runner.resume(stage, figures)
        if sr.routing.route == "online" and not sr.live:
            yield pending
            return
        live_keys = {k for lv in sr.live for k in lv.keys}
        sr.load = Load.of(pending)
        to_batch = batch_models(self.conf, stage, sr.routing, sr.load)
        online: Pending = {}
        for model, paths in pending.items():
            if model in to_batch:
                sr.queue.extend(chunks(self.conf, self.endpoints[model], paths, live_keys))
            elif not live_keys:
                online[model] = paths
            else:
                online[model] = _subset(model, paths, set(_keys(paths)) - live_keys, scratch)
        started = min([lv.record.created_at for lv in sr.live], default=time.time())
        if sr.routing.route == "auto":
            sr.deadline_at = started + sr.routing.batch_deadline_s
        if sr.queue:
            asyncio.run(self.runner.submit_first(sr))
        yield {m: p for m, p in online.items() if p}
        if sr.live or sr.queue:
            asyncio.run(self.runner.drive(sr))
        figures.to_online += sum(len(k) for k in sr.leftover.values())
        rest = {m: _subset(m, pending.get(m, []), keys, scratch) for m, keys in sr.leftover.items() if keys}
        yield {m: p for m, p in rest.items() if p}


def _keys(paths: list[str]) -> list[str]:
    return pl.scan_parquet(paths).select("key").collect()["key"].to_list()


def _subset(model: str, paths: list[str], keys: list[str] | set[str], scratch: str) -> list[str]:
    """A pending file with only `keys` of a model's pending files."""
    if not paths:
        return []
    rows = pl.scan_parquet(paths).filter(pl.col("key").is_in(list(keys))).collect()
    if rows.is_empty():
        return []
    path = os.path.join(scratch, f"online-{model}-{time.time_ns()}.parquet")
    rows.write_parquet(path)
    return [path]
