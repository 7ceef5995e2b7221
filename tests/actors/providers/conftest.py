"""An emulator on loopback and a one-call helper, so adapters are tested over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import aiohttp
import pytest

from actors.emulator.config import EmulatorConfig, LatencyModel
from actors.emulator.server import EmulatorServer
from actors.providers.base import get_adapter
from actors.types import CallSpec, Endpoint, ParsedResponse, Provider

MODEL_IDS: dict[str, str] = {
    "openai": "gpt-4o",
    "anthropic": "claude-sonnet-4-5",
    "gemini": "gemini-2.5-flash",
}


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(EmulatorConfig(latency=LatencyModel(0.0, 0.0))) as server:
        yield server


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def _endpoint(server: EmulatorServer, provider: Provider, model_id: str | None = None) -> Endpoint:
    """An endpoint on the emulator; OpenAI's base_url carries /v1 as real clients configure it."""
    base = server.url + "/v1" if provider == "openai" else server.url
    return Endpoint("m", provider, model_id or MODEL_IDS[provider], base, "TEST_KEY", "acct")


async def _call(
    session: aiohttp.ClientSession, endpoint: Endpoint, spec: CallSpec, api_key: str = "sk-test"
) -> ParsedResponse:
    """Build, send and parse one call the way the client actor does."""
    adapter = get_adapter(endpoint.provider)
    http = adapter.build(endpoint, spec)
    headers = {**http.headers, **adapter.auth_headers(api_key)}
    async with session.post(http.url, json=http.json, headers=headers) as resp:
        body = await resp.read()
        return adapter.parse(spec, resp.status, resp.headers, body)


Call = Callable[..., Awaitable[ParsedResponse]]
MakeEndpoint = Callable[..., Endpoint]


@pytest.fixture
def endpoint_for(emulator: EmulatorServer) -> MakeEndpoint:
    """`endpoint_for(provider, model_id=None)`: an endpoint on the module's emulator."""
    return lambda provider, model_id=None: _endpoint(emulator, provider, model_id)


@pytest.fixture
def call(session: aiohttp.ClientSession) -> Call:
    """`await call(endpoint, spec, api_key="sk-test")`: one call through the adapter."""
    return lambda endpoint, spec, api_key="sk-test": _call(session, endpoint, spec, api_key)
