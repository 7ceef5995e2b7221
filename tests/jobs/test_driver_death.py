"""However a run ends, the local Ray it started leaves no process behind; when its driver is
SIGKILLed, its clients send nothing new after a driver lease."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil
import pytest

from actors.driver_lease import DRIVER_LEASE_S
from actors.emulator.config import LatencyModel
from actors.emulator.server import EmulatorServer
from tests.conftest import emulator_config
from tests.jobs.test_reaper import wait_until_gone
from tests.jobs.test_resume import local_shards, small_config, start_mid_stage


@pytest.mark.slow
@pytest.mark.parametrize("end", [signal.SIGKILL, signal.SIGTERM, None])
def test_a_local_ray_leaves_no_process_however_the_run_ends(
    tmp_path: Path, api_key: str, end: signal.Signals | None
) -> None:
    with EmulatorServer(emulator_config(latency=LatencyModel(0.06, 0.0005), seed=5)) as emu:
        proc = start_mid_stage(small_config(tmp_path, emu.url), local_shards(tmp_path))
        left = psutil.Process(proc.pid).children(recursive=True)
        if end is not None:
            # The driver alone, not its process group: what Ray started must end without that.
            os.kill(proc.pid, end)
        ended = time.time()
        out, _ = proc.communicate(timeout=240)
        expected = {signal.SIGKILL: -9, signal.SIGTERM: 143, None: 0}[end]
        assert proc.returncode == expected, out.decode()[-3000:]
        assert len(left) > 3, left  # Ray's processes and the reaper
        assert wait_until_gone(left, 10) == []
        last = max(emu.admitted_times())
    if end == signal.SIGKILL:
        assert last - ended < DRIVER_LEASE_S + 0.5
