"""Signals that stop a run gracefully: SIGINT (Ctrl-C) and SIGTERM (`ray job stop`, spot notices).

Outside the engine a signal raises `Interrupted` at once: stages write their tables
atomically, so nothing half-written is left. While the engine dispatches, the first signal
only asks it to drain (stop dispatching, let in-flight calls finish within
`engine.drain_timeout_s`, flush the store); a second one cuts calls still on the wire off
at once. The waiting is here; the engine tells its clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

from actors.errors import Interrupted

SIGNALS = (signal.SIGINT, signal.SIGTERM)

DRAIN_GRACE_S = 10.0
"""How long after the clients' drain deadline the driver still waits for their batches."""
CUT_OFF_WAIT_S = 2.0
"""After a second signal, how long the driver waits for the batches the clients cut off."""

log = logging.getLogger("specstress.engine")

InFlight = dict[asyncio.Task[None], list[str]]
"""The engine's batches in flight: each task with the keys it carries."""


@contextlib.contextmanager
def on_signals(handler: Callable[[int], None]) -> Iterator[bool]:
    """Route SIGINT and SIGTERM to `handler(signum)` inside the block, then restore the old handlers.

    Yields False (and changes nothing) off the main thread, where Python cannot take signals.
    """
    if threading.current_thread() is not threading.main_thread():
        yield False
        return
    previous: dict[int, Any] = {}

    def relay(signum: int, frame: FrameType | None) -> None:
        handler(signum)

    for sig in SIGNALS:
        previous[sig] = signal.signal(sig, relay)
    try:
        yield True
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def raise_interrupted(signum: int) -> None:
    """The handler outside the engine: stop where we are."""
    raise Interrupted(signum)


async def wait_in_flight(in_flight: InFlight, interrupted: asyncio.Event) -> None:
    """Wait until nothing is in flight, or a signal asks for a drain; a task's error propagates."""
    signal_waiter = asyncio.create_task(interrupted.wait())
    try:
        while in_flight and not interrupted.is_set():
            done, _ = await asyncio.wait([*in_flight, signal_waiter], return_when=asyncio.FIRST_COMPLETED)
            for task in done - {signal_waiter}:
                task.result()
    finally:
        signal_waiter.cancel()


async def drain_in_flight(in_flight: InFlight, abandon: asyncio.Event, timeout_s: float) -> list[str]:
    """Wait for batches in flight; after the clients' deadline and a grace, give up on the rest.

    Clients cut their own calls off at `timeout_s` (at once after a second signal, which
    sets `abandon`) and return what finished; a batch still missing after that (its client
    hung or died) is abandoned whole. Returns the keys of the abandoned batches.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s + DRAIN_GRACE_S
    waiter = asyncio.create_task(abandon.wait())
    try:
        while in_flight and not abandon.is_set() and (left := deadline - loop.time()) > 0:
            await asyncio.wait([*in_flight, waiter], timeout=left, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    if in_flight and abandon.is_set():
        # Clients were told to cut off now: their batches, with what finished, are on the way.
        await asyncio.wait(list(in_flight), timeout=CUT_OFF_WAIT_S)
    dropped = [k for keys in in_flight.values() for k in keys]
    tasks = list(in_flight)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    if dropped:
        log.warning(
            "%d calls still in flight after the drain were abandoned; a resume counts them", len(dropped)
        )
    return dropped
