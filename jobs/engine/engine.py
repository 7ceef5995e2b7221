"""The fan-out engine, driver side: requests table in, call store out, bounded memory throughout.

A calling stage writes its requests (model, spec JSON, its own id columns) with
`write_requests`, then calls `run`. The engine works out which keys the store lacks,
streams them per model from disk in windows, hands batches to client actors, writes their
answers to the store, and keeps the manifest and the progress view current. Memory is
bounded by the windows, not by the table. `results` joins the requests back to the store.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import ray

from actors.client import ABANDONED, UNSENT, ClientActor, ClientSettings
from actors.errors import BudgetExceeded, ConfigError, Interrupted
from actors.limiter import get_limiter, kill_limiter
from actors.retry import RetryPolicy
from actors.store import CallStore, contains
from actors.types import Endpoint, call_key, spec_from_json
from jobs.conf.loader import account_limits, endpoint, to_account_limits
from jobs.conf.schema import RunConf
from jobs.engine.batching.router import BatchFigures, BatchRouter
from jobs.engine.drain import InFlight, drain_in_flight, on_signals, wait_in_flight
from jobs.engine.journal import Journal, dangling, discard
from jobs.engine.progress import Progress
from jobs.engine.rundir import Manifest, RunDir

log = logging.getLogger("specstress.engine")

REQUEST_COLUMNS = ("key", "model", "spec")
"""Columns every requests table has; a stage adds its own id columns beside them."""


@dataclass
class StageCalls:
    """What one `run` did, for the manifest and the caller."""

    requests: int = 0
    cached: int = 0
    made: int = 0
    ok: int = 0
    failed: int = 0
    rate_limited: int = 0
    retries: int = 0
    redispatched: int = 0
    repaid_after_kill: int = 0
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    batch: BatchFigures = field(default_factory=BatchFigures)
    """What the providers' batch APIs did for this table (stages in `batch`/`auto` mode)."""

    def as_dict(self) -> dict[str, Any]:
        return {**vars(self), "batch": self.batch.as_dict()}


class _Window:
    """Counts requests dispatched and not yet stored; `reserve` waits while it is full."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.used = 0
        self._cond = asyncio.Condition()

    async def reserve(self, n: int) -> None:
        async with self._cond:
            await self._cond.wait_for(lambda: self.used + n <= max(self.size, n))
            self.used += n

    async def release(self, n: int) -> None:
        async with self._cond:
            self.used -= n
            self._cond.notify_all()


def client_placements(n: int) -> list[Any]:
    """Scheduling strategies that put `n` clients round-robin on the live nodes with CPUs.

    Losing a node then loses only its share of the calls in flight. Soft affinity: a client
    whose node dies restarts wherever Ray finds room. (Ray's "SPREAD" is best effort and
    left two of three clients on one node in our three-node test.)
    """
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = sorted(node["NodeID"] for node in ray.nodes() if node["Alive"] and node["Resources"].get("CPU"))
    if len(nodes) < 2:
        return [None] * n
    return [NodeAffinitySchedulingStrategy(nodes[i % len(nodes)], soft=True) for i in range(n)]


class Engine:
    """Owns the client actors and limiters of one run; one instance serves every stage."""

    def __init__(self, conf: RunConf, run: RunDir, manifest: Manifest, store: CallStore) -> None:
        self.conf = conf
        self.run_dir = run
        self.manifest = manifest
        self.store = store
        self._endpoints: dict[str, Endpoint] = {k: endpoint(conf, k) for k in conf.models}
        self._clients: list[Any] = []
        self._limiters: dict[str, Any] = {}
        self._rr = itertools.count()
        self._journal: Journal | None = None
        self._router = BatchRouter(conf, run, store, self._endpoints, manifest.run_id)
        self._abandoned: list[str] = []
        """Keys abandoned in flight by a drained stop; the journal keeps them for the resume's count."""

    # ---- requests ---------------------------------------------------------------------

    def write_requests(self, stage: str, chunks: Iterable[pl.DataFrame]) -> str:
        """Write a stage's requests (columns model, spec, plus its own ids), adding each row's key.

        A key may repeat (two rows asking the same question); the `dispatch` column marks its
        first row, so pending work is found by streaming filters, never by an in-memory unique.
        """
        name = f"{stage}.parquet"
        self.run_dir.requests.write_atomic(name, lambda sink: self._write_request_chunks(sink, chunks))
        return self.run_dir.requests.join(name)

    def _write_request_chunks(self, sink: Any, chunks: Iterable[pl.DataFrame]) -> None:
        seen: set[bytes] = set()
        writer: pq.ParquetWriter | None = None
        for chunk in chunks:
            if chunk.is_empty():
                continue
            self.check_models(chunk["model"].unique().to_list())
            keys = [
                call_key(self._endpoints[m], spec_from_json(js))
                for m, js in zip(chunk["model"], chunk["spec"], strict=True)
            ]
            first = []
            for k in keys:
                digest = bytes.fromhex(k)
                first.append(digest not in seen)
                seen.add(digest)
            keyed = chunk.with_columns(key=pl.Series(keys, dtype=pl.String), dispatch=pl.Series(first))
            table = keyed.select(
                *REQUEST_COLUMNS, "dispatch", pl.exclude(*REQUEST_COLUMNS, "dispatch")
            ).to_arrow()
            if writer is None:
                writer = pq.ParquetWriter(sink, table.schema, compression="zstd")
            writer.write_table(table)
        if writer is None:
            empty = pa.schema([(c, pa.string()) for c in REQUEST_COLUMNS] + [("dispatch", pa.bool_())])
            writer = pq.ParquetWriter(sink, empty)
        writer.close()

    def check_models(self, models: Iterable[str]) -> None:
        unknown = sorted(set(models) - set(self._endpoints))
        if unknown:
            raise ConfigError(f"stage asks for model keys not in `models`: {unknown}")

    def results(self, requests_path: str, columns: list[str]) -> pl.LazyFrame:
        """The requests table joined to each key's stored answer (left join: nothing dropped)."""
        answers = self.store.latest(columns=["key", *[c for c in columns if c != "key"]])
        return self.run_dir.root.scan_parquet(requests_path).join(answers, on="key", how="left")

    # ---- running ----------------------------------------------------------------------

    def estimate_usd(self, pending: pl.LazyFrame) -> float:
        """Dollar estimate of pending calls: prompt chars / 4 in, max_tokens (or 512) out."""
        per_model = (
            pending.with_columns(
                in_tok=pl.col("spec").str.len_bytes() / 4,
                out_tok=pl.col("spec")
                .str.extract(r'"max_tokens":(\d+)')
                .cast(pl.Float64, strict=False)
                .fill_null(512.0),
            )
            .group_by("model")
            .agg(pl.col("in_tok").sum(), pl.col("out_tok").sum())
            .collect()
        )
        total = 0.0
        for row in per_model.iter_rows(named=True):
            prices = self._endpoints[row["model"]].prices
            total += prices.cost_usd(int(row["in_tok"]), int(row["out_tok"]))
        return total

    def spent_usd(self) -> float:
        """Dollars this run has paid so far, from the store (exact, survives kills)."""
        return self.store.spent_usd(self.manifest.run_id)

    def run(self, stage: str, requests_path: str) -> StageCalls:
        """Make every call the store lacks. Raises `BudgetExceeded` (resumable) at the budget."""
        t0 = time.monotonic()
        calls = StageCalls()
        req = self.run_dir.root.scan_parquet(requests_path).filter(pl.col("dispatch")).select("key", "model")
        totals = dict(req.group_by("model").len().collect().iter_rows())
        calls.requests = sum(totals.values())
        scratch = tempfile.mkdtemp(prefix=f"specstress-{stage}-")
        try:
            self._run_pending(stage, requests_path, scratch, totals, calls)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        calls.elapsed_s = time.monotonic() - t0
        self.manifest.set_calls(stage, calls.as_dict())
        return calls

    def _write_pending(self, requests_path: str, scratch: str) -> dict[str, list[str]]:
        """Split the requests the store lacks into one local scratch Parquet file per model.

        One streaming pass, a row group at a time: memory is bounded by a row group plus the
        compact answered-key array, never by the stage's rows.
        """
        answered = self.store.answered_keys(include_failed=not self.conf.engine.retry_failed)
        writers: dict[str, pq.ParquetWriter] = {}
        paths: dict[str, list[str]] = {}
        try:
            requests = self.run_dir.root.parquet_file(requests_path)
            for batch in requests.iter_batches(batch_size=8192, columns=["key", "model", "spec", "dispatch"]):
                keys = batch.column("key").to_numpy(zero_copy_only=False).astype("S32")
                known = contains(answered, keys)
                missing = pa.Table.from_batches([batch]).filter(
                    pc.and_(batch.column("dispatch"), pa.array(~known))
                )
                for model in pc.unique(missing["model"]).to_pylist():
                    rows = missing.filter(pc.equal(missing["model"], model)).select(["key", "spec"])
                    if model not in writers:
                        paths[model] = [os.path.join(scratch, f"pending-{len(paths):04d}.parquet")]
                        writers[model] = pq.ParquetWriter(paths[model][0], rows.schema)
                    writers[model].write_table(rows)
        finally:
            for w in writers.values():
                w.close()
        return paths

    def _run_pending(
        self, stage: str, requests_path: str, scratch: str, totals: dict[str, int], calls: StageCalls
    ) -> None:
        pending = self._write_pending(requests_path, scratch)
        to_make = {m: sum(pq.ParquetFile(p).metadata.num_rows for p in paths) for m, paths in pending.items()}
        calls.cached = calls.requests - sum(to_make.values())
        budget = self.conf.budget_usd
        if budget is not None and to_make:
            lf = pl.concat([pl.scan_parquet(p).with_columns(model=pl.lit(m)) for m, p in pending.items()])
            spent, estimate = self.spent_usd(), self.estimate_usd(lf)
            if spent + estimate > budget:
                raise BudgetExceeded(
                    f"stage '{stage}' would cost about ${estimate:.2f} for {sum(to_make.values())} calls, "
                    f"with ${spent:.2f} already spent: over budget_usd=${budget:.2f}. "
                    "Raise budget_usd or shrink the run; nothing was sent. "
                    "`specstress estimate CONFIG` shows the cost per stage and model before a run."
                )
        calls.repaid_after_kill = self._count_interrupted(stage)

        def stored(rows: pa.RecordBatch) -> None:
            self._account(rows, calls, None)
            self.manifest.set_calls(stage, calls.as_dict())

        # Batch routing (jobs/batching): yields what goes online now, then what batches left.
        for online in self._router.route(stage, pending, scratch, calls.batch, stored):
            part = {m: sum(pq.ParquetFile(p).metadata.num_rows for p in ps) for m, ps in online.items()}
            if any(part.values()):
                progress = Progress(stage, totals, part)
                try:
                    asyncio.run(self._dispatch(stage, online, part, calls, progress))
                finally:
                    progress.close()

    def _count_interrupted(self, stage: str) -> int:
        """Calls earlier sessions dispatched but never stored: paid twice at most once each."""
        journal_loc = self.run_dir.journal
        old = dangling(journal_loc, self._session_id())
        if old.is_empty():
            return 0
        lost = old.join(self.store.done_keys().collect(), on="key", how="anti").height
        if lost:
            log.warning(
                "%d calls were in flight when an earlier session was killed; they are sent again", lost
            )
            sessions = self.manifest.data.setdefault("interrupted", [])
            sessions.append({"stage": stage, "sessions": sorted(set(old["session"])), "in_flight": lost})
            self.manifest.save()
        discard(journal_loc, set(old["session"]))
        return lost

    def _session_id(self) -> str:
        if self._journal is None:
            self._journal = Journal(self.run_dir.journal)
        return self._journal.session_id

    def start_clients(self) -> None:
        if self._clients:
            return
        n = self.conf.engine.num_clients
        limits = account_limits(self.conf)
        acc_limits = {
            acc: to_account_limits(lim, self.conf.engine.lease_margin) for acc, lim in limits.items()
        }
        # Created here, so the driver owns them (and holds their handles: a non-detached actor
        # dies with its last handle); clients find them by name.
        self._limiters = {acc: get_limiter(acc, al) for acc, al in acc_limits.items()}
        settings = ClientSettings(
            endpoints=self._endpoints,
            in_flight={acc: max(1, math.ceil(lim.max_in_flight / n)) for acc, lim in limits.items()},
            policy=RetryPolicy(
                max_attempts=self.conf.engine.max_attempts,
                base_s=self.conf.engine.backoff_base_s,
                max_s=self.conf.engine.backoff_max_s,
            ),
            run_id=self.manifest.run_id,
        )
        self._clients = [
            ClientActor.options(scheduling_strategy=where).remote(settings, seed=self.conf.seed + i)
            for i, where in enumerate(client_placements(n))
        ]

    def close(self) -> None:
        """Close client sessions, end the limiters; the journal is deleted, save the keys a drain abandoned."""
        if self._clients:
            ray.get([c.close.remote() for c in self._clients])
            for c in self._clients:
                ray.kill(c)
            self._clients = []
        for account, handle in self._limiters.items():
            kill_limiter(account, handle)
        self._limiters = {}
        if self._journal is not None:
            self._journal.close(keep=self._abandoned)
            self._journal = None

    def _batches(self, paths: list[str]) -> Iterator[list[tuple[str, str]]]:
        """(key, spec) batches of one model's pending files, read one row group at a time."""
        for path in paths:
            for batch in pq.ParquetFile(path).iter_batches(batch_size=self.conf.engine.batch_size):
                yield list(zip(batch.column(0).to_pylist(), batch.column(1).to_pylist(), strict=True))

    def _journaled(self, batches: Iterator[list[tuple[str, str]]]) -> Iterator[list[tuple[str, str]]]:
        """Yield `batches`, each journaled before it is yielded (a window ahead on object stores)."""
        journal = self._journal
        assert journal is not None
        ahead = 1 if journal.appends else self.conf.engine.window_per_model
        group: list[list[tuple[str, str]]] = []
        for items in batches:
            group.append(items)
            if sum(map(len, group)) >= ahead:
                journal.record(k for part in group for k, _ in part)
                yield from group
                group = []
        journal.record(k for part in group for k, _ in part)
        yield from group

    async def _dispatch(
        self,
        stage: str,
        pending: dict[str, list[str]],
        to_make: dict[str, int],
        calls: StageCalls,
        progress: Progress,
    ) -> None:
        self.start_clients()
        self._session_id()
        writer = self.store.writer(flush_rows=self.conf.engine.flush_rows, flush_s=self.conf.engine.flush_s)
        stop = asyncio.Event()
        budget = self.conf.budget_usd
        spent_before = self.spent_usd() if budget is not None else 0.0
        t0 = time.monotonic()
        in_flight: InFlight = {}
        loop = asyncio.get_running_loop()
        signalled: list[int] = []
        interrupted, abandon = asyncio.Event(), asyncio.Event()

        def on_flush() -> None:
            calls.elapsed_s = time.monotonic() - t0  # the rate so far, for `specstress status`'s ETA
            self.manifest.set_calls(stage, calls.as_dict())

        async def handle(items: list[tuple[str, str]], window: _Window) -> None:
            attempt = 0
            while True:
                client = self._clients[next(self._rr) % len(self._clients)]
                try:
                    batch: pa.RecordBatch = await client.call_batch.remote(items)
                    break
                except ray.exceptions.RayActorError:
                    # The actor (or its node) died with this batch in flight; it restarts and we
                    # send the batch again. These calls may be paid twice: count them.
                    attempt += 1
                    calls.redispatched += len(items)
                    await asyncio.sleep(min(2.0 * attempt, 10.0))
            if signalled:
                # A draining client returns calls it never sent (unpaid) and calls it cut off
                # (perhaps paid: kept in the journal for the resume to count); neither is stored.
                status = batch.column("status")
                cut = batch.filter(pc.equal(status, ABANDONED)).column("key").to_pylist()
                self._abandoned += cut
                batch = batch.filter(pc.invert(pc.is_in(status, pa.array([UNSENT, ABANDONED]))))
            if batch.num_rows:
                self._account(batch, calls, progress)
                if writer.add(batch):
                    on_flush()
            await window.release(len(items))
            if budget is not None and spent_before + calls.cost_usd >= budget:
                stop.set()

        async def feed(model: str) -> None:
            window = _Window(self.conf.engine.window_per_model)
            for items in self._journaled(self._batches(pending[model])):
                if stop.is_set():
                    return
                await window.reserve(len(items))
                if stop.is_set():
                    await window.release(len(items))
                    return
                task = asyncio.create_task(handle(items, window))
                in_flight[task] = [k for k, _ in items]
                task.add_done_callback(lambda t: in_flight.pop(t, None))

        async def ticker() -> None:
            while True:
                await asyncio.sleep(1.0)
                progress.refresh()
                if writer.due() and writer.flush():
                    on_flush()

        feeders = [asyncio.create_task(feed(m)) for m in to_make]

        def interrupt(signum: int) -> None:
            # Called from the signal handler: only hand over to the loop (thread-safe wake-up).
            signalled.append(signum)
            events = (stop, interrupted, abandon)
            loop.call_soon_threadsafe(self._stop_feeding, events, feeders, len(signalled))

        tick = asyncio.create_task(ticker())
        try:
            with on_signals(interrupt):
                for result in await asyncio.gather(*feeders, return_exceptions=True):
                    if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                        raise result
                await wait_in_flight(in_flight, interrupted)
                if interrupted.is_set():
                    self._abandoned += await drain_in_flight(
                        in_flight, abandon, self.conf.engine.drain_timeout_s
                    )
        finally:
            tick.cancel()
            writer.flush()
            on_flush()
        if signalled:
            log.warning("stage '%s' drained after signal %d; results so far are stored", stage, signalled[0])
            raise Interrupted(signalled[0], abandoned=len(self._abandoned))
        if stop.is_set():
            raise BudgetExceeded(
                f"stage '{stage}' stopped at budget_usd=${budget:.2f} "
                f"(spent ${spent_before + calls.cost_usd:.2f}); everything paid is stored. "
                "Raise budget_usd and run the same command to resume."
            )

    def _stop_feeding(
        self,
        events: tuple[asyncio.Event, asyncio.Event, asyncio.Event],
        feeders: list[asyncio.Task[None]],
        n_signals: int,
    ) -> None:
        """First signal: dispatch nothing more, and clients send nothing new. Second: stop waiting."""
        stop, interrupted, abandon = events
        # The first signal gives calls on the wire the drain timeout; a second cuts them off now.
        for client in self._clients:
            client.drain.remote(self.conf.engine.drain_timeout_s if n_signals == 1 else 0.0)
        stop.set()
        interrupted.set()
        for f in feeders:
            f.cancel()
        if n_signals > 1:
            abandon.set()

    @staticmethod
    def _account(batch: pa.RecordBatch, calls: StageCalls, progress: Progress | None) -> None:
        t = pa.Table.from_batches([batch])
        ok = pc.equal(t["status"], "ok")
        n_ok = pc.sum(ok).as_py() or 0
        calls.made += t.num_rows
        calls.ok += n_ok
        calls.failed += t.num_rows - n_ok
        calls.rate_limited += pc.sum(t["rate_limited"]).as_py() or 0
        calls.retries += (pc.sum(t["attempts"]).as_py() or 0) - t.num_rows
        calls.cost_usd += pc.sum(t["cost_usd"]).as_py() or 0.0
        calls.input_tokens += pc.sum(t["input_tokens"]).as_py() or 0
        calls.output_tokens += pc.sum(t["output_tokens"]).as_py() or 0
        calls.cached_input_tokens += pc.sum(t["cached_input_tokens"]).as_py() or 0
        if n_ok < t.num_rows:
            for kind, n in (
                pl.from_arrow(t.filter(pc.invert(ok)).select(["error_kind"]))["error_kind"]
                .value_counts()
                .iter_rows()
            ):
                calls.failures[kind] = calls.failures.get(kind, 0) + n
        if progress is not None:
            progress.update(t)
