"""The reaper: once a driver is SIGKILLed, what it started is ended, in whatever session; nothing else is."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import psutil

from jobs.reaper import alive

DRIVER = """
import os, subprocess, sys, time
from jobs.driver import start_reaper

start_reaper()
subprocess.Popen(["sleep", "300"])
# A "raylet" that dies with the driver, and its "agent" in a session of its own, which is
# reparented then, as Ray's agents are.
RAYLET = '''
import os, subprocess, time
parent = os.getppid()
subprocess.Popen(["sleep", "300"], start_new_session=True)
while os.getppid() == parent:
    time.sleep(0.05)
'''
subprocess.Popen([sys.executable, "-c", RAYLET])
print("ready", flush=True)
time.sleep(300)
"""


def wait_until_gone(procs: list[psutil.Process], timeout_s: float) -> list[psutil.Process]:
    """The processes of `procs` still alive (zombies count as gone) after up to `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while (left := [p for p in procs if alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def test_a_killed_drivers_descendants_are_ended_and_a_bystander_is_not() -> None:
    bystander = subprocess.Popen(["sleep", "300"])
    driver = subprocess.Popen([sys.executable, "-c", DRIVER], stdout=subprocess.PIPE)
    descendants: list[psutil.Process] = []
    try:
        assert driver.stdout is not None and driver.stdout.readline() == b"ready\n"
        deadline = time.monotonic() + 30
        while len(descendants) < 4:  # the reaper, sleep, the raylet and its agent
            assert time.monotonic() < deadline, descendants
            time.sleep(0.05)
            descendants = psutil.Process(driver.pid).children(recursive=True)
        agent = [p for p in descendants if p.pid == os.getsid(p.pid)]
        reaper = [p for p in descendants if "jobs.reaper" in " ".join(p.cmdline())]
        assert len(agent) == 2 and len(reaper) == 1  # the reaper has a session of its own too
        time.sleep(1.0)  # the reaper looks every 0.1 s

        os.kill(driver.pid, signal.SIGKILL)  # the driver alone, and left a zombie for now
        assert wait_until_gone(descendants, 10) == []
        assert bystander.poll() is None
    finally:
        for p in descendants:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        for proc in (bystander, driver):
            proc.kill()
            proc.wait()
        if driver.stdout is not None:
            driver.stdout.close()
