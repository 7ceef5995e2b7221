"""`python -m jobs.reaper PID`: end what a driver leaves behind when it dies.

A local Ray's dashboard and runtime-env agents outlive a driver killed by SIGKILL or the OOM
killer: their parent, the raylet, dies with the driver, and they are reparented, not ended.
`jobs/driver.py` starts this watchdog, in a session of its own (so a kill of the driver's
process group spares it), before it starts a local Ray. While the driver lives the reaper
records the driver's descendants; once it is gone, it ends those still running and whatever
they started since: SIGTERM, then SIGKILL after a grace period. It ends nothing else.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time

import psutil

POLL_S = 0.1
"""Seconds between looks at the driver and its descendants."""
GRACE_S = 1.0
"""Seconds between SIGTERM and SIGKILL."""


def alive(proc: psutil.Process) -> bool:
    """Running and not a zombie: a killed driver its parent has not reaped yet is gone."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _descendants(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return proc.children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def watch(driver: psutil.Process, *, poll_s: float = POLL_S) -> list[psutil.Process]:
    """Every process descended from `driver` while it lived (but this one); returns once it is gone."""
    seen: dict[int, psutil.Process] = {}
    while alive(driver):
        seen.update((p.pid, p) for p in _descendants(driver) if p.pid != os.getpid())
        time.sleep(poll_s)
    return list(seen.values())


def reap(procs: list[psutil.Process], *, grace_s: float = GRACE_S) -> None:
    """End `procs` and their current descendants: SIGTERM, then SIGKILL for those still up after `grace_s`.

    A `psutil.Process` remembers its start time, so a pid the system reused since is left alone.
    """
    left = [p for p in procs if p.is_running()]
    targets = {p.pid: p for p in left}
    for p in left:
        targets.update((c.pid, c) for c in _descendants(p))
    for p in targets.values():
        with contextlib.suppress(psutil.Error):  # gone meanwhile, or its pid reused
            p.terminate()
    _, survivors = psutil.wait_procs(list(targets.values()), timeout=grace_s)
    for p in survivors:
        with contextlib.suppress(psutil.Error):
            p.kill()


def main(argv: list[str]) -> None:
    """Watch the driver whose pid is `argv[0]`, then reap what it left."""
    try:
        driver = psutil.Process(int(argv[0]))
    except psutil.NoSuchProcess:
        return
    reap(watch(driver))


if __name__ == "__main__":
    main(sys.argv[1:])
