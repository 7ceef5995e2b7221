"""The client pool renews its clients' driver leases; when the renewals stop, the clients pause."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import ray

from actors.driver_lease import DRIVER_LEASE_S
from actors.emulator.config import LatencyModel
from actors.emulator.server import EmulatorServer
from actors.types import chat, spec_to_json
from actors.wal import WalSettings
from jobs.conf.loader import endpoint
from jobs.config import load_config
from jobs.engine.clients import ClientPool
from tests.conftest import emulator_config, run_conf_yaml

pytestmark = pytest.mark.usefixtures("ray_local")


def test_clients_send_past_their_first_lease_and_pause_within_one_once_renewals_stop(
    tmp_path: Path, api_key: str
) -> None:
    cfg = tmp_path / "conf.yaml"
    text = run_conf_yaml("URL", tmp_path / "run", models=("m_openai",))
    # One client, 4 calls in flight of ~50 ms each: 500 calls take about 6 s.
    text = text.replace("params: {max_tokens: 64}}", "params: {max_tokens: 64}, limits: {max_in_flight: 4}}")
    n = 500
    with EmulatorServer(emulator_config(latency=LatencyModel(0.05, 0.0))) as emu:
        cfg.write_text(text.replace("URL", emu.url))
        conf = load_config(cfg, ["engine.num_clients=1"])
        pool = ClientPool()
        pool.start(
            conf, {"m_openai": endpoint(conf, "m_openai")}, "run", WalSettings(str(tmp_path / "wal"), "s")
        )
        try:
            items = [(f"k{i}", spec_to_json(chat("m_openai", f"q {i}", max_tokens=16))) for i in range(n)]
            batch = pool.next().call_batch.remote(items, "s")
            while emu.stats()["total"] == 0:
                time.sleep(0.05)
            time.sleep(2.5 * DRIVER_LEASE_S)
            recent = [t for t in emu.admitted_times() if t > time.time() - 0.5]
            assert recent, "renewed clients keep sending past their first lease"

            pool.stop_renewing()  # as when the driver dies
            stopped = time.time()
            time.sleep(DRIVER_LEASE_S + 1.5)
            last = max(emu.admitted_times())
            sent = emu.stats()["total"]
            assert last - stopped < DRIVER_LEASE_S + 0.5  # a renewal sent just before the stop may land late
            assert sent < n and not ray.wait([batch], timeout=0)[0]  # paused, not failed

            ray.get(pool.handles[0].renew.remote(60.0))  # a renewal lets the paused calls go on
            rows = ray.get(batch, timeout=60)
        finally:
            pool.close()
        assert rows.column("status").to_pylist() == ["ok"] * n
        assert emu.stats()["total"] == n
