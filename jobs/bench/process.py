"""Benchmarks' fresh processes: each measured step runs alone, so its peak memory is its own."""

from __future__ import annotations

import multiprocessing as mp
import resource
from collections.abc import Callable
from typing import Any


def in_fresh_process(target: Callable[..., None], *args: Any) -> dict[str, Any]:
    """Run `target(*args, conn)` in a spawned process and return the dict it sends on `conn`."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=target, args=(*args, child))
    proc.start()
    out = parent.recv()
    proc.join()
    return dict(out)


def peak_rss_mb() -> float:
    """This process's own peak RSS. `ru_maxrss` misleads in a spawned child: Linux carries the
    parent's peak across exec, while VmHWM belongs to the new address space."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
