"""The routing decision: which models' calls go to batch, in which chunks, and when `auto` gives up.

Pure reasoning over the config, the pending files and the accounts' rate limits; talking
to the providers is `runner.py`'s.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import polars as pl
import pyarrow.parquet as pq

from actors.providers.base import get_adapter
from actors.providers.batch import BatchItem, BatchLimits, get_batch_api
from actors.settings import limit_seconds
from actors.tokens import CHARS_PER_TOKEN
from actors.types import Endpoint, spec_from_json
from jobs.conf.batching import BatchConf, BatchProviderConf, RoutingConf
from jobs.conf.loader import account_limits, account_of
from jobs.conf.schema import RunConf
from jobs.engine.pending import Pending

log = logging.getLogger("specstress.batch")


@dataclass
class Chunk:
    """Calls of one model to submit as one batch; `round` counts resubmissions of missing items."""

    model: str
    keys: list[str]
    round: int = 0


@dataclass
class Load:
    """Items and prompt bytes per model, for the online-time estimate."""

    items: dict[str, int] = field(default_factory=dict)
    bytes_per_item: dict[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, pending: Pending) -> Load:
        load = cls()
        for model, paths in pending.items():
            n, size = (
                pl.scan_parquet(paths).select(pl.len(), pl.col("spec").str.len_bytes().sum()).collect().row(0)
            )
            load.items[model] = int(n)
            load.bytes_per_item[model] = float(size or 0) / max(int(n), 1)
        return load


def limits_for(conf: BatchConf, provider: str) -> BatchLimits:
    """The provider's documented limits, lowered or raised by config."""
    api = get_batch_api(provider)
    assert api is not None, provider
    over = conf.providers.get(provider, BatchProviderConf())
    base = api.limits
    return BatchLimits(
        max_requests=over.max_requests or base.max_requests,
        max_bytes=over.max_bytes or base.max_bytes,
        max_in_flight=over.max_in_flight or base.max_in_flight,
    )


def batch_capable(conf: RunConf, model: str) -> bool:
    """Whether a model's calls may go through a batch API: its provider has one and config allows."""
    m = conf.models[model]
    return get_batch_api(m.provider) is not None and bool(m.batch_api)


def online_seconds(conf: RunConf, items: dict[str, int], load: Load) -> float:
    """Seconds the accounts' rate limits need to make `items` (per model) online."""
    limits = account_limits(conf)
    per_account: dict[str, list[float]] = {}
    for model, n in items.items():
        acc = per_account.setdefault(account_of(conf, model), [0.0, 0.0])
        acc[0] += n
        acc[1] += n * load.bytes_per_item.get(model, 0.0) / CHARS_PER_TOKEN
    margin = conf.engine.lease_margin
    return max(
        (
            limit_seconds(limits[a], calls / margin, tin / margin, 0.0)[0]
            for a, (calls, tin) in per_account.items()
        ),
        default=0.0,
    )


def batch_models(conf: RunConf, stage: str, routing: RoutingConf, load: Load) -> set[str]:
    """Models whose calls go to batch: a batch API, not switched off, and the route allows.

    `auto` sends nothing to batch when its deadline leaves no room to make the calls online
    should the batches be late.
    """
    if routing.route == "online":
        return set()
    able = {m for m in load.items if batch_capable(conf, m)}
    for m in sorted(set(load.items) - able):
        log.info("stage %s: model %s has no batch API here (batch_api: false or provider); online", stage, m)
    if routing.route == "auto":
        need = online_seconds(conf, load.items, load) * conf.batch.online_safety
        if routing.batch_deadline_s <= need:
            log.info(
                "stage %s: deadline %.0fs leaves no room for batch (online needs about %.0fs); online",
                stage,
                routing.batch_deadline_s,
                need,
            )
            return set()
    return able


def chunks(conf: RunConf, ep: Endpoint, paths: list[str], exclude: set[str]) -> Iterator[Chunk]:
    """Cut a model's calls (but those in `exclude`) into batches within the provider's limits."""
    api = get_batch_api(ep.provider)
    assert api is not None
    lim = limits_for(conf.batch, ep.provider)
    current: list[str] = []
    size = 0
    for path in paths:
        for part in pq.ParquetFile(path).iter_batches(batch_size=8192, columns=["key", "spec"]):
            for key, spec in zip(part.column(0).to_pylist(), part.column(1).to_pylist(), strict=True):
                if key in exclude:
                    continue
                n = api.item_bytes(BatchItem(key, request_body(ep, spec)))
                if current and (len(current) >= lim.max_requests or size + n > lim.max_bytes):
                    yield Chunk(ep.model_key, current)
                    current, size = [], 0
                current.append(key)
                size += n
    if current:
        yield Chunk(ep.model_key, current)


def request_body(ep: Endpoint, spec_json: str) -> dict:
    """The provider request body of one call, as the online path would send it."""
    return get_adapter(ep.provider).build(ep, spec_from_json(spec_json)).json


def poll_sleep_s(conf: RunConf, deadline_at: float | None) -> float:
    """Seconds between polls: `batch.poll_s`, shorter as `auto`'s deadline nears."""
    poll = conf.batch.poll_s
    if deadline_at is None:
        return poll
    return max(0.05, min(poll, (deadline_at - time.time()) / 4))


def cutoff_due(conf: RunConf, deadline_at: float | None, outstanding: dict[str, int], load: Load) -> bool:
    """auto: is it time to make the `outstanding` calls (per model) online to meet the deadline?"""
    if deadline_at is None:
        return False
    need = online_seconds(conf, outstanding, load) * conf.batch.online_safety
    return time.time() + need + poll_sleep_s(conf, deadline_at) >= deadline_at
