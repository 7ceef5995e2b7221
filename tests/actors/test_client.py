"""The client core against the emulator: a lapsed driver lease holds every new attempt until renewed."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

from actors.client import UNSENT, ClientCore, ClientSettings
from actors.driver_lease import DRIVER_LEASE_S
from actors.emulator.config import FaultRates
from actors.emulator.server import EmulatorServer
from actors.limiter_core import Lease, Settlement
from actors.metrics import CallMetrics
from actors.retry import RetryPolicy
from actors.types import Endpoint, Provider, chat, spec_to_json
from actors.wal import WalSettings
from tests.actors.test_metrics import MetricFactory
from tests.conftest import emulator_config


class OpenLimiter:
    """Stands in for a limiter actor handle and grants whatever is asked: no rate limit here."""

    def __init__(self) -> None:
        self.lease = SimpleNamespace(remote=self._lease)
        self.settle = SimpleNamespace(remote=self._settle)

    async def _lease(
        self, client_id: str, n: int, want_in: float, want_out: float, settlement: Settlement | None
    ) -> Lease:
        return Lease(requests=n, input_tokens=want_in, output_tokens=want_out, ttl_s=60.0)

    async def _settle(self, client_id: str, settlement: Settlement) -> None:
        return None


def client_core(
    base_url: str,
    api_key: str,
    wal_dir: Path,
    driver_lease_s: float = DRIVER_LEASE_S,
    provider: Provider = "openai",
    model_id: str = "gpt-4o",
    **policy: float,
) -> ClientCore:
    """A client core without Ray for model key "m" (`provider`'s wire format at `base_url`), no rate limits."""
    ep = Endpoint("m", provider, model_id, base_url, "SPECSTRESS_TEST_KEY", "acct")
    settings = ClientSettings(
        endpoints={"m": ep},
        wal=WalSettings(str(wal_dir), "test"),
        in_flight={"acct": 4},
        policy=RetryPolicy(**policy),
    )
    limiter = OpenLimiter()

    async def key_for(name: str) -> str:
        return api_key

    return ClientCore(
        settings,
        lambda account: limiter,
        key_for,
        metrics=CallMetrics(MetricFactory()),
        driver_lease_s=driver_lease_s,
    )


def _items(n: int, tag: str) -> list[tuple[str, str]]:
    return [(f"{tag}{i}", spec_to_json(chat("m", f"{tag} {i}", max_tokens=16))) for i in range(n)]


async def test_a_call_after_the_driver_lease_lapsed_waits_for_a_renewal(
    emulator: EmulatorServer, api_key: str, tmp_path: Path
) -> None:
    core = client_core(f"{emulator.url}/v1", api_key, tmp_path, driver_lease_s=0.3)
    first = await core.call_batch(_items(2, "first"), "s")  # within the lease creation grants
    assert first.column("status").to_pylist() == ["ok", "ok"]
    await asyncio.sleep(0.4)
    later = asyncio.ensure_future(core.call_batch(_items(3, "later"), "s"))
    await asyncio.sleep(0.5)
    assert emulator.stats()["total"] == 2 and not later.done()  # paused, not failed
    core.renew(0.3)
    rows = await asyncio.wait_for(later, 10)
    assert rows.column("status").to_pylist() == ["ok"] * 3
    assert emulator.stats()["total"] == 5
    await core.close()


async def test_retries_wait_for_the_driver_lease_too(api_key: str, tmp_path: Path) -> None:
    with EmulatorServer(emulator_config(faults=FaultRates(server_500=1.0))) as emu:
        core = client_core(
            f"{emu.url}/v1", api_key, tmp_path, driver_lease_s=0.3, max_attempts=1000, base_s=0.01, max_s=0.01
        )
        batch = asyncio.ensure_future(core.call_batch(_items(1, "q"), "s"))
        await asyncio.sleep(0.6)
        tried = emu.stats()["total"]
        await asyncio.sleep(0.5)
        assert tried > 1 and emu.stats()["total"] == tried  # retried, then held
        core.renew(0.2)
        await asyncio.sleep(0.1)
        assert emu.stats()["total"] > tried
        core.drain(5.0)
        rows = await asyncio.wait_for(batch, 10)
        await core.close()
    assert rows.column("status").to_pylist() == [UNSENT]


async def test_a_drain_answers_calls_held_by_a_lapsed_driver_lease_unsent(
    emulator: EmulatorServer, api_key: str, tmp_path: Path
) -> None:
    core = client_core(f"{emulator.url}/v1", api_key, tmp_path, driver_lease_s=0.0)  # lapsed from the start
    batch = asyncio.ensure_future(core.call_batch(_items(5, "q"), "s"))
    await asyncio.sleep(0.3)
    assert not batch.done()
    core.drain(5.0)
    rows = await asyncio.wait_for(batch, 5)  # no renewal came: the drain alone ends the wait
    assert rows.column("status").to_pylist() == [UNSENT] * 5
    assert emulator.stats()["total"] == 0
    await core.close()
