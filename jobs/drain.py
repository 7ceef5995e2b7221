"""Signals that stop a run gracefully: SIGINT (Ctrl-C) and SIGTERM (`ray job stop`, spot notices).

Outside the engine a signal raises `Interrupted` at once: stages write their tables
atomically, so nothing half-written is left. While the engine dispatches, the first signal
only asks it to drain (stop dispatching, let in-flight calls finish within
`engine.drain_timeout_s`, flush the store); a second one abandons what is still in flight.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

from actors.errors import Interrupted

SIGNALS = (signal.SIGINT, signal.SIGTERM)


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
