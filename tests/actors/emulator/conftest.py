"""Helpers to start an emulator per test and send raw wire requests to it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, ExitStack

import aiohttp
import pytest

from actors.emulator.config import EmulatorConfig, LatencyModel
from actors.emulator.server import EmulatorServer

StartEmulator = Callable[..., EmulatorServer]
NO_LATENCY = LatencyModel(0.0, 0.0)


@pytest.fixture
def start_emulator() -> Iterator[StartEmulator]:
    """`start_emulator(**config_fields)`: a running emulator (zero latency unless given), stopped after the test."""
    with ExitStack() as stack:

        def start(**fields: object) -> EmulatorServer:
            fields.setdefault("latency", NO_LATENCY)
            server: AbstractContextManager[EmulatorServer] = EmulatorServer(EmulatorConfig(**fields))  # type: ignore[arg-type]
            return stack.enter_context(server)

        yield start


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s
