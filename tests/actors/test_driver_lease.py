"""The driver lease: waits return while it is valid, and a renewal from another thread ends a wait."""

from __future__ import annotations

import asyncio
import threading
import time

from actors.driver_lease import DriverLease


async def test_a_renewal_from_another_thread_wakes_the_waiting_calls() -> None:
    lease = DriverLease(0.2)
    await asyncio.wait_for(lease.wait(), 0.1)  # the lease creation grants
    await asyncio.sleep(0.25)
    waiters = [asyncio.ensure_future(lease.wait()) for _ in range(3)]
    await asyncio.sleep(0.3)
    assert not any(w.done() for w in waiters)
    # Ray runs the actor's `renew` in its own concurrency group, on a thread of its own.
    renewed_at = time.monotonic()
    threading.Thread(target=lease.renew, args=(1.0,)).start()
    await asyncio.wait_for(asyncio.gather(*waiters), 1.0)
    assert time.monotonic() - renewed_at < 0.5


async def test_a_lifted_lease_lets_every_call_through() -> None:
    lease = DriverLease(0.0)
    waiter = asyncio.ensure_future(lease.wait())
    await asyncio.sleep(0.1)
    assert not waiter.done()
    lease.lift()
    await asyncio.wait_for(waiter, 1.0)
    await asyncio.wait_for(lease.wait(), 0.1)
