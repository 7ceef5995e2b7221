"""Dispatch: one online fan-out of a stage's pending calls to the client actors.

Each model's pending files are read in batches and handed to clients while the model's
window has room. Clients log each send and each answer (`actors/wal.py`); the answers that
come back are counted here, and the `Compactor` moves the logs into the store.
Dispatch stops feeding at the budget, on a signal (see `drain.py`) or when a model fails
every call for a reason retrying cannot fix (`failfast.py`), and a batch whose client actor
dies is sent again to another one, a bounded number of times.
"""

from __future__ import annotations

import asyncio
import logging
import time

import pyarrow as pa
import pyarrow.compute as pc
import ray

from actors.client import ABANDONED, UNSENT
from actors.errors import Interrupted, SpecstressError
from jobs.conf.schema import EngineConf
from jobs.engine.accounting import StageAccount
from jobs.engine.budget import Budget
from jobs.engine.clients import ClientPool
from jobs.engine.drain import InFlight, drain_in_flight, on_signals, wait_in_flight
from jobs.engine.pending import Batch, Pending, read_batches
from jobs.engine.progress import Progress
from jobs.engine.recovery import Compactor

log = logging.getLogger("specstress.engine")

MAX_CLIENT_LOSSES = 5
"""Times one batch may lose its client actor (the actor or its node died with the batch in
flight) and be sent again; one loss more fails the stage with `ClientsLost`. A node loss
costs a batch one or two; clients that die on every batch would otherwise loop forever."""

LOST_CLIENT_WAIT_S = 2.0
"""Wait before resending a batch after its n-th lost client: n times this, up to `LOST_CLIENT_MAX_WAIT_S`
(time for Ray to restart the actor)."""
LOST_CLIENT_MAX_WAIT_S = 10.0


class ClientsLost(SpecstressError):
    """A batch lost its client actor more than `MAX_CLIENT_LOSSES` times: the clients keep dying."""


class Window:
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


class Dispatch:
    """The state of one fan-out: what is in flight, whether to stop, and which signals came."""

    def __init__(
        self,
        conf: EngineConf,
        clients: ClientPool,
        compactor: Compactor,
        account: StageAccount,
        progress: Progress,
        budget: Budget,
        spent_before: float,
    ) -> None:
        """`spent_before`: the run's spend when dispatch starts."""
        self.conf = conf
        self.clients = clients
        self.compactor = compactor
        self.account = account
        self.progress = progress
        self.budget = budget
        self.abandoned = 0
        """Calls a drained stop cut off on the wire (their sends stay in the log, to be counted)."""
        self.spent_before = spent_before
        self.in_flight: InFlight = {}
        self.signals: list[int] = []
        self.stop = asyncio.Event()
        """Dispatch nothing more: the budget is reached, a model failed fast, or a signal came."""
        self.interrupted = asyncio.Event()
        """A signal asked for a drain."""
        self.abandon = asyncio.Event()
        """A second signal: stop waiting for calls on the wire."""
        self._feeders: list[asyncio.Task[None]] = []
        self._t0 = time.monotonic()

    @property
    def spent_usd(self) -> float:
        return self.spent_before + self.account.calls.cost_usd

    async def run(self, pending: Pending) -> None:
        """Make the `pending` calls. Raises `Interrupted` after a drain, `SystematicFailure` when a
        model fails fast, `BudgetExceeded` at the budget; calls in flight are stored first."""
        loop = asyncio.get_running_loop()

        def on_signal(signum: int) -> None:
            # Called from the signal handler: only hand over to the loop (thread-safe wake-up).
            self.signals.append(signum)
            loop.call_soon_threadsafe(self._stop_feeding, len(self.signals))

        self._feeders = [asyncio.create_task(self._feed(paths)) for paths in pending.values()]
        tick = asyncio.create_task(self._tick())
        try:
            with on_signals(on_signal):
                for result in await asyncio.gather(*self._feeders, return_exceptions=True):
                    if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                        raise result
                await wait_in_flight(self.in_flight, self.interrupted)
                if self.interrupted.is_set():
                    dropped = await drain_in_flight(self.in_flight, self.abandon, self.conf.drain_timeout_s)
                    self.abandoned += len(dropped)
        finally:
            tick.cancel()
            self._compact(seal=True)
        stage = self.account.stage
        if self.signals:
            log.warning(
                "stage '%s' drained after signal %d; results so far are stored", stage, self.signals[0]
            )
            raise Interrupted(self.signals[0], abandoned=self.abandoned)
        self.account.fail_fast.check()
        if self.stop.is_set():
            raise self.budget.stopped(stage, self.spent_usd)

    def _save(self) -> None:
        self.account.calls.elapsed_s = time.monotonic() - self._t0  # the rate so far, for `status`'s ETA
        self.account.save()

    def _compact(self, *, seal: bool = False) -> None:
        """Move the clients' sealed log segments to the store (all of them after `seal`), then save
        the figures, so the manifest never counts answers the store lacks."""
        if seal:
            self.clients.seal()
        self.compactor.compact()
        self._save()

    async def _feed(self, paths: list[str]) -> None:
        """Hand one model's batches to clients while its window has room, until done or stopped."""
        window = Window(self.conf.window_per_model)
        for items in read_batches(paths, self.conf.batch_size):
            if self.stop.is_set():
                return
            await window.reserve(len(items))
            if self.stop.is_set():
                await window.release(len(items))
                return
            task = asyncio.create_task(self._handle(items, window))
            self.in_flight[task] = [k for k, _ in items]
            task.add_done_callback(self._landed)

    def _landed(self, task: asyncio.Task[None]) -> None:
        self.in_flight.pop(task, None)

    async def _handle(self, items: Batch, window: Window) -> None:
        """One batch: call, count what the client logged, free its window room, check budget and failures."""
        batch = await self._call(items)
        if self.signals:
            # A draining client returns calls it never sent (unpaid) and calls it cut off
            # (perhaps paid: their sends stay in the log for the count); it logged neither.
            status = batch.column("status")
            self.abandoned += pc.sum(pc.equal(status, ABANDONED)).as_py() or 0
            batch = batch.filter(pc.invert(pc.is_in(status, pa.array([UNSENT, ABANDONED]))))
        if batch.num_rows:
            self.progress.update(self.account.add(batch))
        await window.release(len(items))
        if self.budget.reached(self.spent_usd) or self.account.fail_fast.tripped is not None:
            self.stop.set()

    async def _call(self, items: Batch) -> pa.RecordBatch:
        """The batch's answers; sent again to the next client when its client is lost (bounded)."""
        losses = 0
        while True:
            try:
                return await self.clients.next().call_batch.remote(items, self.account.stage)
            except ray.exceptions.RayActorError as err:
                losses += 1
                if losses > MAX_CLIENT_LOSSES:
                    raise ClientsLost(
                        f"stage '{self.account.stage}': a batch of {len(items)} calls lost its client actor "
                        f"{losses} times ({err}); giving up. Check the Ray cluster (`ray status`), then run "
                        "the same command to resume."
                    ) from err
                # The actor (or its node) died with this batch in flight; it restarts and we
                # send the batch again. These calls may be paid twice: count them.
                self.account.calls.redispatched += len(items)
                log.warning(
                    "a client actor was lost with %d calls in flight (%d of %d losses allowed); sending them again",
                    len(items),
                    losses,
                    MAX_CLIENT_LOSSES,
                )
                await asyncio.sleep(min(LOST_CLIENT_WAIT_S * losses, LOST_CLIENT_MAX_WAIT_S))

    async def _tick(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(min(1.0, self.conf.flush_s))
            self.progress.refresh()
            if time.monotonic() - last >= self.conf.flush_s:
                last = time.monotonic()
                self._compact()

    def _stop_feeding(self, n_signals: int) -> None:
        """First signal: dispatch nothing more, and clients send nothing new. Second: stop waiting."""
        # The first signal gives calls on the wire the drain timeout; a second cuts them off now.
        self.clients.drain(self.conf.drain_timeout_s if n_signals == 1 else 0.0)
        self.stop.set()
        self.interrupted.set()
        for f in self._feeders:
            f.cancel()
        if n_signals > 1:
            self.abandon.set()
