"""The three batch adapters against the emulator's batch APIs, over real HTTP.

A batch item's body is the online adapter's body, and its answer parses with the online
parser; the emulator answers batch items exactly as it would the online call.
"""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from actors.emulator.config import BatchBehaviour
from actors.emulator.server import EmulatorServer
from actors.emulator.stats import request_hash
from actors.providers.base import get_adapter
from actors.providers.batch import BatchItem, get_batch_api
from actors.providers.batch.base import BatchHttp
from actors.types import Endpoint, chat
from tests.conftest import TEST_KEY, emulator_config

# The batch client and the emulator's batch routes must close what they open.
pytestmark = pytest.mark.filterwarnings("error::ResourceWarning")

MODELS = {"openai": "gpt-4o", "anthropic": "claude-sonnet-4-5", "gemini": "gemini-2.5-flash"}
PATHS = {
    "openai": "/v1/chat/completions",
    "anthropic": "/v1/messages",
    "gemini": "/v1beta/models/gemini-2.5-flash:generateContent",
}


def _endpoint(url: str, provider: str) -> Endpoint:
    base = url + "/v1" if provider == "openai" else url
    return Endpoint("m", provider, MODELS[provider], base, "SPECSTRESS_TEST_KEY", "acct")  # type: ignore[arg-type]


def _items(ep: Endpoint, n: int) -> list[BatchItem]:
    adapter = get_adapter(ep.provider)
    specs = [chat("m", f"Question {i}: is honesty kinder than tact?", max_tokens=64) for i in range(n)]
    return [BatchItem(f"k{i:03d}", adapter.build(ep, s).json) for i, s in enumerate(specs)]


async def _run(ep: Endpoint, items: list[BatchItem], *, cancel_after_s: float | None = None) -> tuple:
    api = get_batch_api(ep.provider)
    assert api is not None
    adapter = get_adapter(ep.provider)
    async with aiohttp.ClientSession() as session:
        sample = adapter.build(ep, chat("m", "x"))
        http = BatchHttp(session, {**sample.headers, **adapter.auth_headers(TEST_KEY)})
        remote_id = await api.submit(http, ep, items, "specstress-test")
        first = await api.poll(http, ep, remote_id)
        if cancel_after_s is not None:
            await asyncio.sleep(cancel_after_s)
            await api.cancel(http, ep, remote_id)
        while True:
            state = await api.poll(http, ep, remote_id)
            if state.phase == "ended":
                break
            await asyncio.sleep(0.05)
        return first, state, await api.results(http, ep, state)


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
async def test_batch_round_trip_matches_the_online_answer(provider: str) -> None:
    with EmulatorServer(emulator_config(batch=BatchBehaviour(delay_s=0.3))) as emu:
        ep = _endpoint(emu.url, provider)
        items = _items(ep, 5)
        first, state, results = await _run(ep, items)
        stats = emu.stats()
    assert first.phase == "in_progress"
    assert state.provider_status in ("completed", "ended", "BATCH_STATE_SUCCEEDED")
    assert sorted(r.key for r in results) == [i.key for i in items]
    adapter = get_adapter(provider)
    for r in results:
        assert r.outcome == "answered" and r.status == 200
        assert adapter.parse_chat(r.body).text  # the online parser reads a batch answer
    hashes = {request_hash(PATHS[provider], i.body) for i in items}
    # Counted under the online request's hash: one submission and one answer each.
    assert {h: stats["batch_by_hash"][h] for h in hashes} == dict.fromkeys(hashes, 1)
    assert {h: stats["ok_by_hash"][h] for h in hashes} == dict.fromkeys(hashes, 1)
    assert stats["batches"] == 1


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
async def test_failures_and_expiry_are_reported_per_item(provider: str) -> None:
    behaviour = BatchBehaviour(delay_s=1.0, expire_s=0.5, failure_rate=0.3)
    with EmulatorServer(emulator_config(batch=behaviour, seed=3)) as emu:
        ep = _endpoint(emu.url, provider)
        items = _items(ep, 20)
        await asyncio.sleep(0)
        _, state, results = await _run(ep, items)
    assert state.provider_status in ("expired", "ended", "BATCH_STATE_EXPIRED")
    answered = [r for r in results if r.outcome == "answered"]
    errors = [r for r in answered if r.status != 200]
    assert 0 < len(errors) < len(answered)  # some finished items failed, not all
    for r in errors:
        err = get_adapter(provider).error(chat("m", "x"), r.status, {}, r.body)
        assert err.retryable  # a 500 inside a batch is worth asking again
    # Items past the expiry never ran: they are reported expired, or (Gemini) not at all.
    assert len(answered) < len(items)
    assert all(r.outcome in ("answered", "expired") for r in results)


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
async def test_cancel_keeps_what_finished(provider: str) -> None:
    with EmulatorServer(emulator_config(batch=BatchBehaviour(delay_s=2.0))) as emu:
        ep = _endpoint(emu.url, provider)
        items = _items(ep, 10)
        _, state, results = await _run(ep, items, cancel_after_s=0.9)
        ok = sum(emu.stats()["ok_by_hash"].values())
    assert state.provider_status in ("cancelled", "ended", "BATCH_STATE_CANCELLED")
    answered = [r for r in results if r.outcome == "answered"]
    assert 0 < len(answered) < len(items) and ok == len(answered)


async def test_unknown_batch_and_missing_key_are_provider_errors() -> None:
    with EmulatorServer(emulator_config()) as emu:
        async with aiohttp.ClientSession() as session:
            resp = await session.get(
                f"{emu.url}/v1/batches/batch_nope", headers={"Authorization": f"Bearer {TEST_KEY}"}
            )
            assert resp.status == 404
            resp = await session.post(f"{emu.url}/v1/messages/batches", json={"requests": []})
            body = json.loads(await resp.read())
            assert resp.status == 401 and body["error"]["type"] == "authentication_error"
