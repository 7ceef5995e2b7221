"""The driver lease: a client sends nothing new unless the driver renewed it within the last second.

A client actor outlives a driver killed by SIGKILL or the OOM killer for a few seconds, and
every call it starts then is paid and never stored. The driver renews each client's lease
every `RENEW_EVERY_S` from a thread (`jobs/engine/clients.py`); when the driver dies the
renewals stop, and each client pauses its new calls within `DRIVER_LEASE_S`. Calls already
on the wire are left to finish. Not to be confused with the limiter's rate leases
(`actors/lease_client.py`), which ration capacity, not liveness.
"""

from __future__ import annotations

import asyncio
import time

from actors.buckets import Clock

DRIVER_LEASE_S = 1.0
"""Seconds a renewal keeps a client sending: the longest a client goes on after its driver died."""
RENEW_EVERY_S = DRIVER_LEASE_S / 4
"""Seconds between the driver's renewals: three may be lost or late before a client pauses."""


class DriverLease:
    """Whether a client may start a request now; calls wait (not fail) while it has lapsed.

    `renew` may come from any thread (Ray runs it in its own concurrency group, so that
    renewals are never queued behind a thousand batches); `wait` runs on the client's loop.
    """

    def __init__(self, valid_s: float = DRIVER_LEASE_S, *, clock: Clock = time.monotonic) -> None:
        """Grant the first lease, so the first batch goes before the first renewal lands."""
        self._clock = clock
        self._until = clock() + valid_s
        self._lifted = False
        self._renewed = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def renew(self, valid_s: float) -> None:
        """Extend the lease to `valid_s` seconds from now on this client's clock, and wake the waiters."""
        self._until = max(self._until, self._clock() + valid_s)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._renewed.set)

    def lift(self) -> None:
        """Let every call through from now on: a draining client must answer its waiting calls
        `unsent` even if its driver has gone quiet. Call it on the client's loop."""
        self._lifted = True
        self._renewed.set()

    async def wait(self) -> None:
        """Return at once while the lease is valid; otherwise when a renewal (or `lift`) comes."""
        while not self._lifted:
            # Loop first, then clear, then look: a renewal from another thread at any point
            # between them is either seen by the look or sets the event after the clear.
            self._loop = asyncio.get_running_loop()
            self._renewed.clear()
            if self._clock() < self._until:
                return
            await self._renewed.wait()
