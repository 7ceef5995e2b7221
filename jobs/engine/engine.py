"""The fan-out engine, driver side: requests table in, call store out, bounded memory throughout.

A calling stage writes its requests (model, spec JSON, its own id columns) with
`write_requests`, then calls `run`. The engine works out which keys the store lacks
(`pending.py`), routes them online or to the providers' batch APIs (`batching/`), streams
the online ones per model from disk in windows to client actors (`dispatch.py`), and keeps
the manifest and the progress view current (`accounting.py`, `progress.py`). Memory is
bounded by the windows, not by the table. `results` joins the requests back to the store.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterable

import polars as pl

from actors.errors import CallsFailed
from actors.store import CallStore
from actors.types import Endpoint
from actors.wal import WalSettings
from jobs.conf.loader import endpoint
from jobs.conf.schema import RunConf
from jobs.engine.accounting import StageAccount, StageCalls
from jobs.engine.batching.router import BatchRouter
from jobs.engine.budget import Budget, estimate_usd
from jobs.engine.clients import ClientPool
from jobs.engine.dispatch import Dispatch
from jobs.engine.failfast import FailFast
from jobs.engine.pending import (
    Pending,
    check_models,
    pending_counts,
    request_totals,
    scan_pending,
    write_pending,
    write_request_table,
)
from jobs.engine.progress import Progress
from jobs.engine.recovery import Compactor, settle, settle_dead
from jobs.engine.rundir import Manifest, RunDir


class Engine:
    """Owns the client actors and limiters of one run; one instance serves every stage."""

    def __init__(self, conf: RunConf, run: RunDir, manifest: Manifest, store: CallStore) -> None:
        self.conf = conf
        self.run_dir = run
        self.manifest = manifest
        self.store = store
        self.budget = Budget(conf.budget_usd)
        self._endpoints: dict[str, Endpoint] = {k: endpoint(conf, k) for k in conf.models}
        self._clients = ClientPool()
        self._router = BatchRouter(conf, run, store, self._endpoints, manifest.run_id)
        self.session = uuid.uuid4().hex[:12]
        """This driver session: names the clients' logs (`actors/wal.py`), settled when it ends."""
        self._settled_dead = False

    # ---- requests ---------------------------------------------------------------------

    def write_requests(self, stage: str, chunks: Iterable[pl.DataFrame]) -> str:
        """Write a stage's requests (columns model, spec, plus its own ids), adding each row's key."""
        name = f"{stage}.parquet"
        self.run_dir.requests.write_atomic(
            name, lambda sink: write_request_table(sink, chunks, self._endpoints)
        )
        return self.run_dir.requests.join(name)

    def check_models(self, models: Iterable[str]) -> None:
        check_models(self._endpoints, models)

    def results(self, requests_path: str, columns: list[str]) -> pl.LazyFrame:
        """The requests table joined to each key's stored answer (left join: nothing dropped)."""
        answers = self.store.latest(columns=["key", *[c for c in columns if c != "key"]])
        return self.run_dir.root.scan_parquet(requests_path).join(answers, on="key", how="left")

    # ---- running ----------------------------------------------------------------------

    def estimate_usd(self, pending: pl.LazyFrame) -> float:
        """Dollar estimate of pending calls (columns model, spec); see `budget.estimate_usd`."""
        return estimate_usd(pending, self._endpoints)

    def spent_usd(self) -> float:
        """Dollars this run has paid so far, from the store (exact, survives kills)."""
        return self.store.spent_usd(self.manifest.run_id)

    def run(self, stage: str, requests_path: str) -> StageCalls:
        """Make every call the store lacks. Raises `BudgetExceeded` (resumable) at the budget, and
        `CallsFailed` (resumable once the cause is fixed) when a model fails fast or every call failed."""
        t0 = time.monotonic()
        self._settle_dead()
        account = StageAccount(
            stage, self.manifest, FailFast(stage, self.conf.engine.fail_fast_after, self._endpoints)
        )
        totals = request_totals(self.run_dir, requests_path)
        account.calls.requests = sum(totals.values())
        scratch = tempfile.mkdtemp(prefix=f"specstress-{stage}-")
        try:
            self._run_pending(account, requests_path, scratch, totals)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        account.calls.elapsed_s = time.monotonic() - t0
        account.save()
        calls = account.calls
        if calls.made and not calls.ok and not calls.cached:
            kinds = ", ".join(f"{k} {n}" for k, n in sorted(calls.failures.items()))
            raise CallsFailed(
                f"stage '{stage}': all {calls.made} calls failed ({kinds}) and none was answered before; "
                "the stage does not count as done. `specstress status` and the stored rows' `error` say "
                "why; fix the cause, then run the same command to send them again."
            )
        return calls

    def _run_pending(
        self, account: StageAccount, requests_path: str, scratch: str, totals: dict[str, int]
    ) -> None:
        stage, calls = account.stage, account.calls
        pending = write_pending(
            self.run_dir, requests_path, self.store, self.conf.engine.retry_failed, scratch
        )
        to_make = pending_counts(pending)
        calls.cached = calls.requests - sum(to_make.values())
        if self.budget.limit_usd is not None and to_make:
            self.budget.refuse_over(
                self.spent_usd(),
                self.estimate_usd(scan_pending(pending)),
                stage=stage,
                calls=sum(to_make.values()),
            )
        # Batch routing (batching/): yields what goes online now, then what batches left.
        for online in self._router.route(stage, pending, scratch, calls.batch, account.stored):
            account.fail_fast.check()  # rows of collected provider batches count too
            part = pending_counts(online)
            if any(part.values()):
                progress = Progress(stage, totals, part)
                try:
                    self._dispatch(online, account, progress)
                finally:
                    progress.close()
        account.fail_fast.check()

    def _dispatch(self, online: Pending, account: StageAccount, progress: Progress) -> None:
        self.start_clients()
        spent = self.spent_usd() if self.budget.limit_usd is not None else 0.0
        compactor = Compactor(self.run_dir.wal, self.store, self.session)
        dispatch = Dispatch(self.conf.engine, self._clients, compactor, account, progress, self.budget, spent)
        asyncio.run(dispatch.run(online))

    def _settle_dead(self) -> None:
        """Once per session, before anything is dispatched: the logs of killed sessions into the
        store (their answers are then not paid again), their unanswered sends counted."""
        if not self._settled_dead:
            settle_dead(self.run_dir.wal, self.store, self.manifest, self.session)
            self._settled_dead = True

    def start_clients(self) -> None:
        engine = self.conf.engine
        wal = WalSettings(self.run_dir.wal.uri, self.session, engine.flush_s, engine.flush_rows)
        self._clients.start(self.conf, self._endpoints, self.manifest.run_id, wal)

    def close(self) -> None:
        """End the clients and limiters, then settle this session's log (sends a drain cut off are counted)."""
        self._clients.close()
        settle(self.run_dir.wal, self.store, self.manifest, self.session)
