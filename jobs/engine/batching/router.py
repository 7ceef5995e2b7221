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
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import aiohttp
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from actors.client import base_row, failed_row, ok_row
from actors.errors import ProviderError
from actors.providers import get_adapter
from actors.providers.batch import BatchItem, ItemResult, RemoteBatch, get_batch_api
from actors.providers.batch.base import BatchHttp
from actors.settings import limit_seconds
from actors.store import STORE_SCHEMA, CallStore, contains
from actors.types import CallSpec, Endpoint, spec_from_json
from jobs.conf.batching import RoutingConf, batch_capable, limits_for, routing_for
from jobs.conf.loader import account_limits, account_of
from jobs.engine.batching.records import BATCHES_DIR, BatchLedger, BatchRecord
from jobs.engine.rundir import RunDir

if TYPE_CHECKING:
    from jobs.conf.schema import RunConf

log = logging.getLogger("specstress.batch")

Pending = dict[str, list[str]]
"""Model key -> local Parquet files of (key, spec) still to answer."""


@dataclass
class _Chunk:
    """Calls of one model to submit as one batch."""

    model: str
    keys: list[str]
    round: int = 0


@dataclass
class _Live:
    record: BatchRecord
    keys: list[str]


@dataclass
class BatchFigures:
    """What batches did for one stage, for the manifest."""

    submitted_batches: int = 0
    submitted_items: int = 0
    resumed_batches: int = 0
    answered: int = 0
    failed: int = 0
    resubmitted: int = 0
    to_online: int = 0
    unconfirmed_items: int = 0
    cost_usd: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return dict(vars(self))


@dataclass
class _Load:
    """Items and prompt bytes per model, for the online-time estimate."""

    items: dict[str, int] = field(default_factory=dict)
    bytes_per_item: dict[str, float] = field(default_factory=dict)


@dataclass
class _StageRun:
    """The batch side of one stage while it runs."""

    stage: str
    routing: RoutingConf
    pending: Pending
    figures: BatchFigures
    on_rows: Callable[[pa.RecordBatch], None]
    load: _Load = field(default_factory=_Load)
    live: list[_Live] = field(default_factory=list)
    queue: deque[_Chunk] = field(default_factory=deque)
    leftover: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    """Calls batches did not answer (or never took): they go online at the end."""
    deadline_at: float | None = None


class BatchRouter:
    """Decides per stage and model what goes to batch, runs the batches, returns what is left."""

    def __init__(
        self, conf: RunConf, run: RunDir, store: CallStore, endpoints: dict[str, Endpoint], run_id: str
    ) -> None:
        self.conf = conf
        self.store = store
        self.endpoints = endpoints
        self.run_id = run_id
        self.ledger = BatchLedger(run.root.child(BATCHES_DIR))

    # ---- the hook -----------------------------------------------------------------------

    def route(
        self,
        stage: str,
        pending: Pending,
        scratch: str,
        figures: BatchFigures,
        on_rows: Callable[[pa.RecordBatch], None],
    ) -> Iterator[Pending]:
        """Yield the parts to make online, running the batch part between them (module doc)."""
        sr = _StageRun(stage, routing_for(self.conf.stages, stage), pending, figures, on_rows)
        sr.live = self._resume(stage, figures)
        if sr.routing.route == "online" and not sr.live:
            yield pending
            return
        live_keys = {k for lv in sr.live for k in lv.keys}
        sr.load = self._load(pending)
        batch_models = self._batch_models(sr)
        online: Pending = {}
        for model, paths in pending.items():
            if model in batch_models:
                sr.queue.extend(self._chunks(model, paths, live_keys))
            elif not live_keys:
                online[model] = paths
            else:
                online[model] = self._subset(model, paths, set(self._keys(paths)) - live_keys, scratch)
        started = min([lv.record.created_at for lv in sr.live], default=time.time())
        if sr.routing.route == "auto":
            sr.deadline_at = started + sr.routing.batch_deadline_s
        if sr.queue:
            asyncio.run(self._submit_first(sr))
        yield {m: p for m, p in online.items() if p}
        if sr.live or sr.queue:
            asyncio.run(self._drive(sr))
        figures.to_online += sum(len(k) for k in sr.leftover.values())
        rest = {
            m: self._subset(m, pending.get(m, []), keys, scratch) for m, keys in sr.leftover.items() if keys
        }
        yield {m: p for m, p in rest.items() if p}

    # ---- deciding -----------------------------------------------------------------------

    def _batch_models(self, sr: _StageRun) -> set[str]:
        """Models whose calls go to batch: a batch API, not switched off, and the route allows."""
        if sr.routing.route == "online":
            return set()
        able = {m for m in sr.pending if batch_capable(self.conf, m)}
        for m in sorted(set(sr.pending) - able):
            log.info(
                "stage %s: model %s has no batch API here (batch_api: false or provider); online", sr.stage, m
            )
        if sr.routing.route == "auto":
            need = self.online_seconds(sr.load.items, sr.load) * self.conf.batch.online_safety
            if sr.routing.batch_deadline_s <= need:
                log.info(
                    "stage %s: deadline %.0fs leaves no room for batch (online needs about %.0fs); online",
                    sr.stage,
                    sr.routing.batch_deadline_s,
                    need,
                )
                return set()
        return able

    def online_seconds(self, items: dict[str, int], load: _Load) -> float:
        """Seconds the accounts' rate limits need to make `items` (per model) online."""
        limits = account_limits(self.conf)
        per_account: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
        for model, n in items.items():
            acc = per_account[account_of(self.conf, model)]
            acc[0] += n
            acc[1] += n * load.bytes_per_item.get(model, 0.0) / 4
        margin = self.conf.engine.lease_margin
        return max(
            (
                limit_seconds(limits[a], calls / margin, tin / margin, 0.0)[0]
                for a, (calls, tin) in per_account.items()
            ),
            default=0.0,
        )

    # ---- pending files ------------------------------------------------------------------

    @staticmethod
    def _load(pending: Pending) -> _Load:
        load = _Load()
        for model, paths in pending.items():
            n, size = (
                pl.scan_parquet(paths).select(pl.len(), pl.col("spec").str.len_bytes().sum()).collect().row(0)
            )
            load.items[model] = int(n)
            load.bytes_per_item[model] = float(size or 0) / max(int(n), 1)
        return load

    @staticmethod
    def _keys(paths: list[str]) -> list[str]:
        return pl.scan_parquet(paths).select("key").collect()["key"].to_list()

    @staticmethod
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

    def _specs(self, pending: Pending, chunk: _Chunk) -> list[tuple[str, str]]:
        rows = pl.scan_parquet(pending[chunk.model]).filter(pl.col("key").is_in(chunk.keys)).collect()
        return list(zip(rows["key"].to_list(), rows["spec"].to_list(), strict=True))

    def _chunks(self, model: str, paths: list[str], exclude: set[str]) -> Iterator[_Chunk]:
        """Cut a model's calls (but those in `exclude`) into batches within the provider's limits."""
        ep = self.endpoints[model]
        api = get_batch_api(ep.provider)
        assert api is not None
        lim = limits_for(self.conf.batch, ep.provider)
        current: list[str] = []
        size = 0
        for path in paths:
            for part in pq.ParquetFile(path).iter_batches(batch_size=8192, columns=["key", "spec"]):
                for key, spec in zip(part.column(0).to_pylist(), part.column(1).to_pylist(), strict=True):
                    if key in exclude:
                        continue
                    n = api.item_bytes(BatchItem(key, self._body(ep, spec)))
                    if current and (len(current) >= lim.max_requests or size + n > lim.max_bytes):
                        yield _Chunk(model, current)
                        current, size = [], 0
                    current.append(key)
                    size += n
        if current:
            yield _Chunk(model, current)

    @staticmethod
    def _body(ep: Endpoint, spec_json: str) -> dict:
        return get_adapter(ep.provider).build(ep, spec_from_json(spec_json)).json

    # ---- resuming -----------------------------------------------------------------------

    def _resume(self, stage: str, figures: BatchFigures) -> list[_Live]:
        """Live batches of this stage from earlier sessions, `submitting` ones reconciled first."""
        records = [r for r in self.ledger.load() if r.stage == stage]
        cut_off = [r for r in records if r.state == "submitting"]
        if cut_off:
            asyncio.run(self._reconcile(cut_off, figures))
        live = [_Live(r, self.ledger.keys(r)) for r in records if r.live]
        if live:
            figures.resumed_batches += len(live)
            log.info(
                "stage %s: resuming %d live batches (%d calls)",
                stage,
                len(live),
                sum(len(lv.keys) for lv in live),
            )
        return live

    async def _reconcile(self, records: list[BatchRecord], figures: BatchFigures) -> None:
        """A create call a kill cut off: adopt the batch if the provider finds it by our tag,
        else the record becomes unconfirmed and its calls are sent again (maybe paid twice)."""
        async with aiohttp.ClientSession() as session:
            for record in records:
                ep = self.endpoints.get(record.model)
                api = get_batch_api(record.provider)
                found = None
                if ep is not None and api is not None:
                    try:
                        found = await api.find(self._http(session, ep), ep, f"specstress-{record.id}")
                    except ProviderError as err:
                        log.warning("batch %s: could not look it up (%s)", record.id, err)
                if found is not None:
                    record.state, record.remote_id, record.submitted_at = (
                        "submitted",
                        found,
                        record.created_at,
                    )
                    log.info("stage %s: batch %s was created before the kill; adopted", record.stage, found)
                else:
                    record.state = "unconfirmed"
                    figures.unconfirmed_items += record.n_items
                    log.warning(
                        "stage %s: batch %s was being created when a session died and cannot be found; "
                        "its %d calls are sent again and may be paid twice",
                        record.stage,
                        record.id,
                        record.n_items,
                    )
                self.ledger.save(record)

    # ---- talking to providers -----------------------------------------------------------

    def _http(self, session: aiohttp.ClientSession, ep: Endpoint) -> BatchHttp:
        # Like the client actor, only the variable the config names is read, and only here.
        api_key = os.environ.get(ep.api_key_env) or ""
        adapter = get_adapter(ep.provider)
        sample = adapter.build(ep, CallSpec(model=ep.model_key))
        return BatchHttp(session, {**sample.headers, **adapter.auth_headers(api_key)})

    async def _submit_first(self, sr: _StageRun) -> None:
        async with aiohttp.ClientSession() as session:
            await self._submit_ready(session, sr)

    async def _submit_ready(self, session: aiohttp.ClientSession, sr: _StageRun) -> None:
        """Submit queued chunks while their model has batch slots free; a refused one goes online."""
        held: deque[_Chunk] = deque()
        while sr.queue:
            chunk = sr.queue.popleft()
            ep = self.endpoints[chunk.model]
            open_now = sum(1 for lv in sr.live if lv.record.model == chunk.model)
            if open_now >= limits_for(self.conf.batch, ep.provider).max_in_flight:
                held.append(chunk)
                continue
            try:
                sr.live.append(await self._submit(session, sr, chunk))
            except ProviderError as err:
                log.warning(
                    "stage %s: a %s batch was not created (%s); its calls go online",
                    sr.stage,
                    chunk.model,
                    err,
                )
                sr.leftover[chunk.model].update(chunk.keys)
        sr.queue.extend(held)

    async def _submit(self, session: aiohttp.ClientSession, sr: _StageRun, chunk: _Chunk) -> _Live:
        ep = self.endpoints[chunk.model]
        api = get_batch_api(ep.provider)
        assert api is not None
        specs = self._specs(sr.pending, chunk)
        items = [BatchItem(key, self._body(ep, spec)) for key, spec in specs]
        keys = [i.key for i in items]
        record = BatchRecord.new(sr.stage, chunk.model, ep.provider, chunk.round, len(items))
        self.ledger.begin(record, keys)  # on disk before the provider hears of it
        try:
            record.remote_id = await api.submit(self._http(session, ep), ep, items, f"specstress-{record.id}")
        except ProviderError as err:
            # A create that failed with a status made nothing; one cut off (timeout, reset)
            # may have: its record stays unconfirmed and the calls go on, counted.
            record.state = "unconfirmed" if err.status is None else "refused"
            self.ledger.save(record)
            if err.status is None:
                sr.figures.unconfirmed_items += len(items)
            raise
        record.state, record.submitted_at = "submitted", time.time()
        self.ledger.save(record)
        sr.figures.submitted_batches += 1
        sr.figures.submitted_items += len(items)
        if chunk.round:
            sr.figures.resubmitted += len(items)
        log.info(
            "stage %s: batch %s (%s, %d calls) submitted", sr.stage, record.remote_id, chunk.model, len(items)
        )
        return _Live(record, keys)

    async def _drive(self, sr: _StageRun) -> None:
        """Poll, collect and repair until no batch is open; what is left goes to `sr.leftover`."""
        cut_at: float | None = None
        async with aiohttp.ClientSession() as session:
            while sr.queue or sr.live:
                await self._submit_ready(session, sr)
                if cut_at is None and self._cutoff_due(sr):
                    cut_at = time.time()
                    await self._cut_over(session, sr)
                for lv in list(sr.live):
                    try:
                        ended = await self._poll(session, lv)
                    except ProviderError as err:  # not retryable: the batch is gone or the key is wrong
                        log.warning("batch %s: %s; its calls go online", lv.record.remote_id, err)
                        self._abandon(sr, lv)
                        continue
                    if ended is not None:
                        sr.live.remove(lv)
                        missing = await self._collect(session, sr, lv, ended)
                        if not missing:
                            continue
                        if sr.routing.route == "batch" and lv.record.round + 1 < self.conf.batch.max_rounds:
                            sr.queue.append(_Chunk(lv.record.model, missing, lv.record.round + 1))
                        else:
                            sr.leftover[lv.record.model].update(missing)
                    elif cut_at is not None and time.time() - cut_at > self.conf.batch.cancel_grace_s:
                        self._abandon(sr, lv)
                if sr.queue or sr.live:
                    await asyncio.sleep(self._sleep_s(sr.deadline_at))

    def _abandon(self, sr: _StageRun, lv: _Live) -> None:
        sr.live.remove(lv)
        lv.record.state = "abandoned"
        self.ledger.save(lv.record)
        sr.leftover[lv.record.model].update(lv.keys)

    def _sleep_s(self, deadline_at: float | None) -> float:
        poll = self.conf.batch.poll_s
        if deadline_at is None:
            return poll
        return max(0.05, min(poll, (deadline_at - time.time()) / 4))

    def _cutoff_due(self, sr: _StageRun) -> bool:
        """auto: is it time to make the outstanding calls online to meet the deadline?"""
        if sr.deadline_at is None:
            return False
        outstanding: dict[str, int] = defaultdict(int)
        for lv in sr.live:
            outstanding[lv.record.model] += len(lv.keys)
        for chunk in sr.queue:
            outstanding[chunk.model] += len(chunk.keys)
        need = self.online_seconds(outstanding, sr.load) * self.conf.batch.online_safety
        return time.time() + need + self._sleep_s(sr.deadline_at) >= sr.deadline_at

    async def _cut_over(self, session: aiohttp.ClientSession, sr: _StageRun) -> None:
        """Stop waiting: cancel open batches (their finished items are still collected), unsent ones go online."""
        log.info(
            "stage %s: near the deadline; cancelling %d batches, the rest goes online", sr.stage, len(sr.live)
        )
        for chunk in sr.queue:
            sr.leftover[chunk.model].update(chunk.keys)
        sr.queue.clear()
        for lv in sr.live:
            ep = self.endpoints[lv.record.model]
            api = get_batch_api(ep.provider)
            assert api is not None
            try:
                await api.cancel(self._http(session, ep), ep, str(lv.record.remote_id))
            except ProviderError as err:
                log.warning(
                    "batch %s: cancel failed (%s); its results are still collected", lv.record.remote_id, err
                )
            lv.record.state = "cancelling"
            self.ledger.save(lv.record)

    async def _poll(self, session: aiohttp.ClientSession, lv: _Live) -> RemoteBatch | None:
        """The batch if it has ended, else None; progress is saved to its record for `status`.

        Raises:
            ProviderError: when polling cannot succeed (404, 401); transient failures wait.
        """
        ep = self.endpoints[lv.record.model]
        api = get_batch_api(ep.provider)
        assert api is not None
        try:
            remote = await api.poll(self._http(session, ep), ep, str(lv.record.remote_id))
        except ProviderError as err:
            if not err.retryable:
                raise
            log.warning("batch %s: poll failed (%s); polling again later", lv.record.remote_id, err)
            return None
        if (remote.provider_status, remote.counts) != (lv.record.provider_status, lv.record.counts):
            lv.record.provider_status, lv.record.counts = remote.provider_status, remote.counts
            self.ledger.save(lv.record)
        return remote if remote.phase == "ended" else None

    async def _collect(
        self, session: aiohttp.ClientSession, sr: _StageRun, lv: _Live, remote: RemoteBatch
    ) -> list[str]:
        """Store an ended batch's answers and final failures; returns the keys to send again."""
        record = lv.record
        ep = self.endpoints[record.model]
        api = get_batch_api(ep.provider)
        assert api is not None
        results = await api.results(self._http(session, ep), ep, remote)
        rows, settled = self._rows(lv, ep, results)
        done = self.store.answered_keys()  # a batch collected before a kill is not stored twice
        if rows:
            keys = np.array([r["key"] for r in rows], dtype="S32")
            rows = [r for r, known in zip(rows, contains(done, keys), strict=True) if not known]
        if rows:
            table = pa.Table.from_pylist(rows, schema=STORE_SCHEMA)
            self.store.write_shard(table)
            for batch in table.to_batches():
                sr.on_rows(batch)
        missing = [k for k in lv.keys if k not in settled]
        ok = sum(1 for r in rows if r["status"] == "ok")
        sr.figures.answered += ok
        sr.figures.failed += len(rows) - ok
        sr.figures.cost_usd += sum(r["cost_usd"] or 0.0 for r in rows)
        record.state, record.ended_at = "collected", time.time()
        record.outcome = {"ok": ok, "failed": len(rows) - ok, "missing": len(missing)}
        self.ledger.save(record)
        log.info(
            "batch %s (%s) ended %s: %d answered, %d failed, %d sent again",
            record.remote_id,
            record.model,
            remote.provider_status,
            ok,
            len(rows) - ok,
            len(missing),
        )
        return missing

    def _rows(self, lv: _Live, ep: Endpoint, results: list[ItemResult]) -> tuple[list[dict], set[str]]:
        """Store rows of the settled items (answers, and errors retrying cannot fix), and their keys."""
        record, wanted = lv.record, set(lv.keys)
        adapter = get_adapter(ep.provider)
        spec = CallSpec(model=record.model)
        latency = time.time() - (record.submitted_at or record.created_at)
        rows: list[dict] = []
        settled: set[str] = set()
        for result in results:
            key = result.key
            if key.startswith("#") and key[1:].isdigit() and int(key[1:]) < len(lv.keys):
                key = lv.keys[int(key[1:])]  # a response without its metadata: by request order
            if key not in wanted or key in settled or result.outcome != "answered":
                continue
            row = base_row(key, ep, "chat", self.run_id)
            row["attempts"] = 1
            try:
                parsed = adapter.parse(spec, result.status, {}, result.body)
            except ProviderError as err:
                if err.retryable:
                    continue  # sent again, like an online retry
                rows.append(failed_row(row, err))
            else:
                rows.append(ok_row(row, ep, parsed, latency, batch=True))
                row["raw"] = result.body.decode("utf-8", "replace")
            settled.add(key)
        return rows, settled
