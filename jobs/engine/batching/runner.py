"""The provider side of batch routing: submit, poll, collect and repair batches, with durable records.

Every batch is recorded (`records.py`) before the provider hears of it, so a killed session's
batches are found again: live ones resumed, a cut-off create reconciled by its tag. Answers
are parsed by the online adapters and written to the call store with the online keys and
schema, at the batch price.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
import numpy as np
import polars as pl
import pyarrow as pa

from actors.client import base_row, failed_row, ok_row
from actors.errors import ProviderError
from actors.providers.base import get_adapter
from actors.providers.batch import BatchItem, ItemResult, RemoteBatch, get_batch_api
from actors.providers.batch.base import BatchHttp
from actors.store import STORE_SCHEMA, CallStore, contains
from actors.types import CallSpec, Endpoint
from jobs.conf.batching import RoutingConf
from jobs.conf.schema import RunConf
from jobs.engine.batching.decide import Chunk, Load, cutoff_due, limits_for, poll_sleep_s, request_body
from jobs.engine.batching.records import BATCHES_DIR, BatchLedger, BatchRecord
from jobs.engine.pending import Pending
from jobs.engine.rundir import RunDir

log = logging.getLogger("specstress.batch")


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
class Live:
    """A batch the provider holds, with the keys of its calls."""

    record: BatchRecord
    keys: list[str]


@dataclass
class StageRun:
    """The batch side of one stage while it runs."""

    stage: str
    routing: RoutingConf
    pending: Pending
    figures: BatchFigures
    on_rows: Callable[[pa.RecordBatch], None]
    """Told of every record batch written to the store, for the stage's accounting."""
    load: Load = field(default_factory=Load)
    live: list[Live] = field(default_factory=list)
    queue: deque[Chunk] = field(default_factory=deque)
    leftover: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    """Calls batches did not answer (or never took): they go online at the end."""
    deadline_at: float | None = None

    def outstanding(self) -> dict[str, int]:
        """Calls per model still in open or queued batches."""
        out: dict[str, int] = defaultdict(int)
        for lv in self.live:
            out[lv.record.model] += len(lv.keys)
        for chunk in self.queue:
            out[chunk.model] += len(chunk.keys)
        return out


class BatchRunner:
    """Runs a stage's batches against the providers' batch APIs, recording each in the ledger."""

    def __init__(
        self, conf: RunConf, run: RunDir, store: CallStore, endpoints: dict[str, Endpoint], run_id: str
    ) -> None:
        self.conf = conf
        self.store = store
        self.endpoints = endpoints
        self.run_id = run_id
        self.ledger = BatchLedger(run.root.child(BATCHES_DIR))

    # ---- resuming -----------------------------------------------------------------------

    def resume(self, stage: str, figures: BatchFigures) -> list[Live]:
        """Live batches of this stage from earlier sessions, `submitting` ones reconciled first."""
        records = [r for r in self.ledger.load() if r.stage == stage]
        cut_off = [r for r in records if r.state == "submitting"]
        if cut_off:
            asyncio.run(self._reconcile(cut_off, figures))
        live = [Live(r, self.ledger.keys(r)) for r in records if r.live]
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
        api_key = os.environ.get(ep.api_key_env) if ep.api_key_env else None
        adapter = get_adapter(ep.provider)
        sample = adapter.build(ep, CallSpec(model=ep.model_key))
        return BatchHttp(session, {**sample.headers, **(adapter.auth_headers(api_key) if api_key else {})})

    async def submit_first(self, sr: StageRun) -> None:
        async with aiohttp.ClientSession() as session:
            await self._submit_ready(session, sr)

    async def _submit_ready(self, session: aiohttp.ClientSession, sr: StageRun) -> None:
        """Submit queued chunks while their model has batch slots free; a refused one goes online."""
        held: deque[Chunk] = deque()
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

    def _specs(self, pending: Pending, chunk: Chunk) -> list[tuple[str, str]]:
        rows = pl.scan_parquet(pending[chunk.model]).filter(pl.col("key").is_in(chunk.keys)).collect()
        return list(zip(rows["key"].to_list(), rows["spec"].to_list(), strict=True))

    async def _submit(self, session: aiohttp.ClientSession, sr: StageRun, chunk: Chunk) -> Live:
        ep = self.endpoints[chunk.model]
        api = get_batch_api(ep.provider)
        assert api is not None
        specs = self._specs(sr.pending, chunk)
        items = [BatchItem(key, request_body(ep, spec)) for key, spec in specs]
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
        return Live(record, keys)

    async def drive(self, sr: StageRun) -> None:
        """Poll, collect and repair until no batch is open; what is left goes to `sr.leftover`."""
        cut_at: float | None = None
        async with aiohttp.ClientSession() as session:
            while sr.queue or sr.live:
                await self._submit_ready(session, sr)
                if cut_at is None and cutoff_due(self.conf, sr.deadline_at, sr.outstanding(), sr.load):
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
                            sr.queue.append(Chunk(lv.record.model, missing, lv.record.round + 1))
                        else:
                            sr.leftover[lv.record.model].update(missing)
                    elif cut_at is not None and time.time() - cut_at > self.conf.batch.cancel_grace_s:
                        self._abandon(sr, lv)
                if sr.queue or sr.live:
                    await asyncio.sleep(poll_sleep_s(self.conf, sr.deadline_at))

    def _abandon(self, sr: StageRun, lv: Live) -> None:
        sr.live.remove(lv)
        lv.record.state = "abandoned"
        self.ledger.save(lv.record)
        sr.leftover[lv.record.model].update(lv.keys)

    async def _cut_over(self, session: aiohttp.ClientSession, sr: StageRun) -> None:
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

    async def _poll(self, session: aiohttp.ClientSession, lv: Live) -> RemoteBatch | None:
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
        self, session: aiohttp.ClientSession, sr: StageRun, lv: Live, remote: RemoteBatch
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

    def _rows(self, lv: Live, ep: Endpoint, results: list[ItemResult]) -> tuple[list[dict], set[str]]:
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
