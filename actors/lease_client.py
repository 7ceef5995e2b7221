"""The client side of the account limiter: a local lease shared by one actor's coroutines.

A client actor runs many requests at once. Asking the limiter actor once per request would
cap it near the cost of one Ray call (see DESIGN.md), so the actor holds one lease of a
fraction of a second's worth and spends it locally, fetches the next one only when it runs
out (one fetch at a time, the others queue behind it), and batches its corrections into
settlements that ride on the next fetch or go out at most every `flush_interval_s`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, fields
from typing import Any

from actors.buckets import Clock
from actors.limiter_core import Lease, Settlement
from actors.types import RateLimitInfo

log = logging.getLogger(__name__)

FetchLease = Callable[[int, float, float, Settlement | None], Awaitable[Lease]]
"""(want_requests, want_input_tokens, want_output_tokens, piggy-backed settlement) -> Lease."""
SendSettlement = Callable[[Settlement], Awaitable[None]]
Sleep = Callable[[float], Awaitable[None]]

_EPS = 1e-6


def _min_headers(a: RateLimitInfo | None, b: RateLimitInfo) -> RateLimitInfo:
    """Field-wise minimum: within one batch the most careful reading of the headers wins."""
    if a is None:
        return b
    merged = {}
    for f in fields(RateLimitInfo):
        x, y = getattr(a, f.name), getattr(b, f.name)
        merged[f.name] = y if x is None else x if y is None else min(x, y)
    return RateLimitInfo(**merged)


@dataclass
class _Pending:
    """A settlement being accumulated between sends."""

    value: Settlement = field(default_factory=Settlement)

    def add(self, other: Settlement) -> None:
        v = self.value
        retry = [r for r in (v.retry_after_s, other.retry_after_s) if r is not None]
        self.value = Settlement(
            input_tokens_delta=v.input_tokens_delta + other.input_tokens_delta,
            output_tokens_delta=v.output_tokens_delta + other.output_tokens_delta,
            unused_requests=v.unused_requests + other.unused_requests,
            unused_input_tokens=v.unused_input_tokens + other.unused_input_tokens,
            unused_output_tokens=v.unused_output_tokens + other.unused_output_tokens,
            rate_limited=v.rate_limited + other.rate_limited,
            retry_after_s=max(retry) if retry else None,
            headers=v.headers if other.headers is None else _min_headers(v.headers, other.headers),
            completed=v.completed + other.completed,
        )

    def take(self) -> Settlement | None:
        value, self.value = self.value, Settlement()
        return None if value.empty else value


class LeaseClient:
    """Spends leases from the account limiter on behalf of one client actor.

    Call every method from the actor's event loop. `acquire` before each attempt,
    `record_usage` after a successful one, `record_rate_limited` after a 429/529, and
    `record_headers` with whatever the provider reported; `close` when done.
    """

    def __init__(
        self,
        fetch_lease: FetchLease,
        send_settlement: SendSettlement,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        lease_requests: int = 64,
        flush_interval_s: float = 0.5,
        default_retry_after_s: float = 2.0,
        estimate_alpha: float = 0.1,
    ) -> None:
        """Set up an empty local lease.

        Args:
            fetch_lease: asks the limiter for a lease, carrying a settlement if one is due.
            send_settlement: sends a settlement on its own, when no fetch carried it in time.
            clock: monotonic seconds; leases expire on this clock, never the limiter's.
            sleep: how to wait (injected so tests run on a fake clock).
            lease_requests: requests asked for per fetch; the limiter caps it further.
            flush_interval_s: longest a correction waits before it is sent on its own.
            default_retry_after_s: local pause after a 429/529 without retry-after.
            estimate_alpha: weight of the newest estimate in the running mean per request.
        """
        if lease_requests < 1 or flush_interval_s <= 0:
            raise ValueError("lease_requests must be >= 1 and flush_interval_s > 0")
        self._fetch_lease = fetch_lease
        self._send_settlement = send_settlement
        self._clock = clock
        self._sleep = sleep
        self._lease_requests = lease_requests
        self._flush_interval_s = flush_interval_s
        self._default_retry_after_s = default_retry_after_s
        self._alpha = estimate_alpha
        self._lock = asyncio.Lock()
        self._requests = 0
        self._input = 0.0
        self._output = 0.0
        self._expires = -math.inf
        self._paused_until = -math.inf
        self._mean_in: float | None = None
        self._mean_out: float | None = None
        self._pending = _Pending()
        self._last_sent = -math.inf
        self._flush_task: asyncio.Task[None] | None = None
        self._closed = False
        self.fetches = 0
        """Lease fetches made (each one Ray call)."""
        self.settlements_sent = 0
        """Settlements sent on their own, not riding on a fetch."""
        self.acquired = 0
        """Requests acquired so far."""

    async def acquire(self, input_tokens_est: int, output_tokens_est: int) -> None:
        """Wait until this actor holds capacity for one request of the estimated size, and take it.

        Coroutines that find the lease empty queue on one lock: the first fetches (and
        sleeps out any wait the limiter asks for), the others then spend what it got.
        """
        if self._closed:
            raise RuntimeError("LeaseClient.acquire after close")
        self._observe(input_tokens_est, output_tokens_est)
        if not self._lock.locked() and self._try_take(input_tokens_est, output_tokens_est):
            return
        async with self._lock:
            while not self._try_take(input_tokens_est, output_tokens_est):
                await self._refill(input_tokens_est, output_tokens_est)

    def _observe(self, est_in: float, est_out: float) -> None:
        a = self._alpha
        self._mean_in = est_in if self._mean_in is None else (1 - a) * self._mean_in + a * est_in
        self._mean_out = est_out if self._mean_out is None else (1 - a) * self._mean_out + a * est_out

    def _try_take(self, est_in: float, est_out: float) -> bool:
        now = self._clock()
        if now >= self._expires:
            self._release_local()
        if now < self._paused_until:
            return False
        if self._requests < 1 or self._input + _EPS < est_in or self._output + _EPS < est_out:
            return False
        self._requests -= 1
        self._input -= est_in
        self._output -= est_out
        self.acquired += 1
        return True

    def _release_local(self) -> None:
        """Hand what is left of the local lease back, to go out with the next settlement."""
        if self._requests or self._input > _EPS or self._output > _EPS:
            self._pending.add(
                Settlement(
                    unused_requests=self._requests,
                    unused_input_tokens=max(self._input, 0.0),
                    unused_output_tokens=max(self._output, 0.0),
                )
            )
        self._requests, self._input, self._output = 0, 0.0, 0.0
        self._expires = -math.inf

    async def _refill(self, est_in: float, est_out: float) -> None:
        """Fetch a fresh lease (returning the old remainder), or sleep out a pause or a wait."""
        pause = self._paused_until - self._clock()
        if pause > 0:
            await self._sleep(pause)
            return
        # A unit must cover this request on its own, since the remainder is returned.
        unit_in = max(self._mean_in or 0.0, est_in)
        unit_out = max(self._mean_out or 0.0, est_out)
        n = self._lease_requests
        self._release_local()
        settlement = self._pending.take()
        try:
            lease = await self._fetch_lease(n, n * unit_in, n * unit_out, settlement)
        except BaseException:
            if settlement is not None:
                self._pending.add(settlement)
            raise
        self.fetches += 1
        if settlement is not None:
            self._last_sent = self._clock()
        if lease.requests > 0:
            self._requests, self._input, self._output = (
                lease.requests,
                lease.input_tokens,
                lease.output_tokens,
            )
            self._expires = self._clock() + lease.ttl_s
        else:
            await self._sleep(lease.wait_s)

    def record_usage(
        self, input_tokens_est: int, output_tokens_est: int, input_tokens: int, output_tokens: int
    ) -> None:
        """Settle one finished request: the limiter gives back or charges actual minus estimate."""
        self._pending.add(
            Settlement(
                input_tokens_delta=input_tokens - input_tokens_est,
                output_tokens_delta=output_tokens - output_tokens_est,
                completed=1,
            )
        )
        self._schedule_flush()

    def record_rate_limited(self, retry_after_s: float | None = None) -> None:
        """Report a 429/529 and pause this actor's acquires until its retry-after passes.

        The attempt's reservation is kept: the provider may have counted it.
        """
        wait = retry_after_s if retry_after_s is not None and retry_after_s > 0 else None
        self._paused_until = max(self._paused_until, self._clock() + (wait or self._default_retry_after_s))
        self._pending.add(Settlement(rate_limited=1, retry_after_s=retry_after_s))
        self._schedule_flush()

    def record_headers(self, info: RateLimitInfo) -> None:
        """Pass the provider's rate-limit headers on, so the limiter can recalibrate."""
        self._pending.add(Settlement(headers=info))
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        if self._closed or (self._flush_task is not None and not self._flush_task.done()):
            return
        self._flush_task = asyncio.get_running_loop().create_task(self._flush_later())

    async def _flush_later(self) -> None:
        delay = self._last_sent + self._flush_interval_s - self._clock()
        if delay > 0:
            await self._sleep(delay)
        try:
            await self.flush()
        except Exception as exc:  # a background send: its settlement is kept for the next fetch
            log.warning("limiter settlement failed, will retry with the next fetch: %r", exc)

    async def flush(self) -> None:
        """Send what is pending now (no call if nothing is)."""
        settlement = self._pending.take()
        if settlement is None:
            return
        try:
            await self._send_settlement(settlement)
        except BaseException:
            self._pending.add(settlement)
            raise
        self._last_sent = self._clock()
        self.settlements_sent += 1

    async def close(self) -> None:
        """Return the unused lease and send the last settlement; later acquires fail."""
        self._closed = True
        task, self._flush_task = self._flush_task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._release_local()
        await self.flush()

    def stats(self) -> dict[str, Any]:
        return {
            "acquired": self.acquired,
            "fetches": self.fetches,
            "settlements_sent": self.settlements_sent,
            "lease_requests_left": self._requests,
        }


def lease_client_for(limiter: Any, client_id: str, **kwargs: Any) -> LeaseClient:
    """A `LeaseClient` talking to a `LimiterActor` handle (from `get_limiter`).

    Args:
        limiter: the actor handle.
        client_id: names this client in the limiter's stats; unique per client actor.
        **kwargs: passed on to `LeaseClient`.
    """

    async def fetch(n: int, want_in: float, want_out: float, settlement: Settlement | None) -> Lease:
        return await limiter.lease.remote(client_id, n, want_in, want_out, settlement)

    async def send(settlement: Settlement) -> None:
        await limiter.settle.remote(client_id, settlement)

    return LeaseClient(fetch, send, **kwargs)
