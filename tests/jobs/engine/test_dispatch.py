"""Dispatch when client actors die: a batch is sent again, a bounded number of times."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import ray
from ray.exceptions import ActorDiedError

from actors.emulator.server import EmulatorServer
from jobs.engine import dispatch
from jobs.engine.dispatch import MAX_CLIENT_LOSSES, ClientsLost
from tests.jobs.engine.test_engine import make_engine, requests


class DyingClient:
    """Stands in for a client actor that dies with every batch handed to it."""

    def __init__(self) -> None:
        self.batches = 0
        self.call_batch = SimpleNamespace(remote=self._die)
        self.seal = SimpleNamespace(remote=lambda: ray.put(None))  # it logged nothing

    async def _die(self, items: list[tuple[str, str]], stage: str) -> Any:
        self.batches += 1
        raise ActorDiedError()


@pytest.fixture(autouse=True)
def no_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dispatch, "LOST_CLIENT_WAIT_S", 0.0)


def test_a_batch_whose_clients_keep_dying_fails_the_stage(tmp_path: Path, emulator: EmulatorServer) -> None:
    engine = make_engine(tmp_path, emulator.url, "engine.batch_size=5")
    path = engine.write_requests("s", requests(["m_openai"], 5))
    dying = DyingClient()
    engine._clients.handles = [dying]  # a started pool: no real actors are made
    with pytest.raises(ClientsLost, match=f"lost its client actor {MAX_CLIENT_LOSSES + 1} times"):
        engine.run("s", path)
    engine._clients.handles = []
    engine.close()
    assert dying.batches == MAX_CLIENT_LOSSES + 1
    assert engine.manifest.data["calls"]["s"]["redispatched"] == 5 * MAX_CLIENT_LOSSES
    assert emulator.stats()["total"] == 0


@pytest.mark.usefixtures("ray_local")
def test_a_batch_that_loses_its_client_up_to_the_bound_is_answered(
    tmp_path: Path, emulator: EmulatorServer
) -> None:
    engine = make_engine(tmp_path, emulator.url, "engine.batch_size=5", "engine.num_clients=1")
    path = engine.write_requests("s", requests(["m_openai"], 5))
    engine.start_clients()
    live = engine._clients.handles
    engine._clients.handles = [DyingClient()] * MAX_CLIENT_LOSSES + live  # round-robin: the live one last
    calls = engine.run("s", path)
    engine._clients.handles = live
    engine.close()
    assert (calls.ok, calls.redispatched) == (5, 5 * MAX_CLIENT_LOSSES)
    assert emulator.stats()["total"] == 5
