"""Faults, stats, prompt caching, personas and vectors of the emulator."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from actors.emulator.config import FaultRates
from actors.emulator.faults import choose_fault
from actors.emulator.personas import EmulatedRequest, ModelStyle, persona_for
from actors.emulator.server import EmulatorServer
from actors.emulator.stats import request_hash
from actors.emulator.tokens import count_tokens, truncate_tokens
from actors.errors import ProviderError
from actors.providers.base import get_adapter
from actors.types import CallSpec, Message

StartEmulator = Callable[..., EmulatorServer]
AUTH = {"Authorization": "Bearer sk-test"}
SPEC = CallSpec("m", messages=(Message("user", "x"),))
LONG = " ".join(f"rule{i} applies." for i in range(700))  # about 3,500 tokens


def openai_body(text: str, system: str | None = None) -> dict[str, Any]:
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": text}
    ]
    return {"model": "gpt-4o", "messages": messages}


async def post_json(
    session: aiohttp.ClientSession, url: str, body: dict[str, Any], headers: dict[str, str]
) -> Any:
    async with session.post(url, json=body, headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def test_stats_count_per_request_hash_and_reset(
    start_emulator: StartEmulator, session: aiohttp.ClientSession
) -> None:
    emu = start_emulator()
    url = emu.url + "/v1/chat/completions"
    for text in ("a", "a", "b"):
        await post_json(session, url, openai_body(text), AUTH)
    stats = emu.stats()
    assert stats["total"] == 3 and stats["status"] == {"200": 3}
    assert stats["by_hash"][request_hash("/v1/chat/completions", openai_body("a"))] == 2
    async with session.post(emu.url + "/_stats/reset") as resp:
        assert resp.status == 200
    assert emu.stats()["total"] == 0


def test_fault_draws_are_deterministic() -> None:
    rates = FaultRates(server_500=0.3, reset=0.2)
    draws = [choose_fault(rates, 7, f"h{i}", 0) for i in range(200)]
    assert draws == [choose_fault(rates, 7, f"h{i}", 0) for i in range(200)]
    assert draws != [choose_fault(rates, 8, f"h{i}", 0) for i in range(200)]
    assert 0.35 < sum(d is not None for d in draws) / 200 < 0.65
    assert any(choose_fault(rates, 7, "h0", attempt) is None for attempt in range(10)), "a retry can succeed"


async def test_server_faults_repeat_across_servers_and_retries_succeed(
    start_emulator: StartEmulator, session: aiohttp.ClientSession
) -> None:
    async def statuses(emu: EmulatorServer) -> list[int]:
        out = []
        for i in range(30):
            async with session.post(emu.url + "/v1/messages", json=anthropic(f"q{i}"), headers=KEY) as resp:
                out.append(resp.status)
        return out

    config = {"seed": 3, "faults": FaultRates(server_500=0.3, overloaded_529=0.2)}
    first, second = await statuses(start_emulator(**config)), await statuses(start_emulator(**config))
    assert first == second and {500, 529, 200} == set(first)
    emu = start_emulator(**config)
    retried = []
    for i in range(10):
        for _ in range(20):
            async with session.post(emu.url + "/v1/messages", json=anthropic(f"q{i}"), headers=KEY) as resp:
                if resp.status == 200:
                    retried.append(i)
                    break
                with pytest.raises(ProviderError) as err:
                    get_adapter("anthropic").parse(SPEC, resp.status, resp.headers, await resp.read())
                assert err.value.kind in ("server", "overloaded")
    assert retried == list(range(10))


KEY = {"x-api-key": "sk-test"}


def anthropic(text: str, system: Any = None, max_tokens: int = 300) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "claude-x",
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": text}],
    }
    if system is not None:
        body["system"] = system
    return body


async def test_reset_closes_connection(start_emulator: StartEmulator, session: aiohttp.ClientSession) -> None:
    emu = start_emulator(faults=FaultRates(reset=1.0))
    with pytest.raises(aiohttp.ClientConnectionError):
        async with session.post(
            emu.url + "/v1/chat/completions", json=openai_body("x"), headers=AUTH
        ) as resp:
            await resp.read()
    assert emu.stats()["status"] == {"reset": 1}


async def test_hang_outlasts_client_timeout(
    start_emulator: StartEmulator, session: aiohttp.ClientSession
) -> None:
    emu = start_emulator(faults=FaultRates(hang=1.0), hang_s=5.0)
    with pytest.raises(asyncio.TimeoutError):
        timeout = aiohttp.ClientTimeout(total=0.3)
        async with session.post(
            emu.url + "/v1/messages", json=anthropic("x"), headers=KEY, timeout=timeout
        ) as resp:
            await resp.read()


@pytest.mark.parametrize("fault", ["malformed_json", "truncated_body"])
async def test_bad_bodies_are_malformed(
    start_emulator: StartEmulator, session: aiohttp.ClientSession, fault: str
) -> None:
    emu = start_emulator(faults=FaultRates(**{fault: 1.0}))
    url = emu.url + "/v1beta/models/gemini-2.5-flash:generateContent"
    body = {"contents": [{"role": "user", "parts": [{"text": "hello"}]}]}
    async with session.post(url, json=body, headers={"x-goog-api-key": "k"}) as resp:
        status, raw = resp.status, await resp.read()
    assert status == 200
    with pytest.raises(ProviderError) as err:
        get_adapter("gemini").parse(SPEC, status, {}, raw)
    assert err.value.kind == "malformed" and err.value.raw == raw.decode()


async def test_openai_implicit_cache(start_emulator: StartEmulator, session: aiohttp.ClientSession) -> None:
    emu = start_emulator()
    url = emu.url + "/v1/chat/completions"
    first = await post_json(session, url, openai_body("first question", LONG), AUTH)
    second = await post_json(session, url, openai_body("another question", LONG), AUTH)
    short = await post_json(session, url, openai_body("q", "short system"), AUTH)
    assert first["usage"]["prompt_tokens_details"]["cached_tokens"] == 0
    cached = second["usage"]["prompt_tokens_details"]["cached_tokens"]
    assert cached >= 1024 and cached % 128 == 0 and cached <= count_tokens(LONG)
    assert short["usage"]["prompt_tokens_details"]["cached_tokens"] == 0
    other_key = await post_json(session, url, openai_body("third", LONG), {"Authorization": "Bearer other"})
    assert other_key["usage"]["prompt_tokens_details"]["cached_tokens"] == 0


async def test_anthropic_explicit_cache(
    start_emulator: StartEmulator, session: aiohttp.ClientSession
) -> None:
    emu = start_emulator()
    url = emu.url + "/v1/messages"
    system = [{"type": "text", "text": LONG, "cache_control": {"type": "ephemeral"}}]
    first = (await post_json(session, url, anthropic("one", system), KEY))["usage"]
    second = (await post_json(session, url, anthropic("two", system), KEY))["usage"]
    unmarked = (await post_json(session, url, anthropic("three", [{"type": "text", "text": LONG}]), KEY))[
        "usage"
    ]
    prefix = count_tokens(LONG)
    assert (first["cache_creation_input_tokens"], first["cache_read_input_tokens"]) == (prefix, 0)
    assert (second["cache_creation_input_tokens"], second["cache_read_input_tokens"]) == (0, prefix)
    assert second["input_tokens"] == count_tokens("two") + 6
    assert unmarked["cache_read_input_tokens"] == unmarked["cache_creation_input_tokens"] == 0


async def test_gemini_implicit_cache(start_emulator: StartEmulator, session: aiohttp.ClientSession) -> None:
    emu = start_emulator()
    url = emu.url + "/v1beta/models/gemini-2.5-flash:generateContent"

    def body(text: str) -> dict[str, Any]:
        return {
            "systemInstruction": {"parts": [{"text": LONG}]},
            "contents": [{"role": "user", "parts": [{"text": text}]}],
        }

    first = await post_json(session, url, body("one"), {"x-goog-api-key": "k"})
    second = await post_json(session, url, body("two"), {"x-goog-api-key": "k"})
    assert "cachedContentTokenCount" not in first["usageMetadata"]
    assert second["usageMetadata"]["cachedContentTokenCount"] >= 1024


async def test_bad_requests_get_provider_400(
    start_emulator: StartEmulator, session: aiohttp.ClientSession
) -> None:
    emu = start_emulator()
    thinking = anthropic("x", max_tokens=100) | {"thinking": {"type": "enabled", "budget_tokens": 500}}
    async with session.post(emu.url + "/v1/messages", json=thinking, headers=KEY) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["type"] == "invalid_request_error"
    async with session.post(emu.url + "/v1/chat/completions", data=b"{not json", headers=AUTH) as resp:
        assert resp.status == 400


def request(model_id: str, text: str, thinking: bool = False) -> EmulatedRequest:
    return EmulatedRequest(model_id, "", (("user", text),), thinking=thinking)


def test_persona_is_deterministic_and_styled() -> None:
    req = request("model-a", "What are the risks of nuclear energy policy?")
    first = persona_for(req).reply(req, random.Random("1"))
    assert first == persona_for(req).reply(req, random.Random("1"))
    assert "nuclear" in first.text or first.refusal
    styles = {ModelStyle.for_model(f"model-{i}") for i in range(20)}
    assert len({s.tone for s in styles}) > 2 and len({s.sentences for s in styles}) > 2
    thought = persona_for(request("m", "Explain gravity.", thinking=True)).reply(
        request("m", "x", True), random.Random(0)
    )
    assert thought.thinking


def test_token_rule() -> None:
    assert count_tokens("Hello, world!") == 4
    assert count_tokens("internationalization") == 4
    assert truncate_tokens("one two three four", 2) == "one two"
    assert truncate_tokens("one two", 5) == "one two"


def test_stats_json_is_serialisable(start_emulator: StartEmulator) -> None:
    assert json.dumps(start_emulator().stats())
