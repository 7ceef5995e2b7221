"""Per-key rate limits: burst, 429 shapes, headers, and keys kept out of stats."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict

from actors.emulator.config import AccountLimits, EmulatorConfig
from actors.emulator.server import EmulatorServer
from actors.errors import ProviderError
from actors.providers.base import get_adapter
from actors.types import CallSpec, Message

StartEmulator = Callable[..., EmulatorServer]

SPEC = CallSpec("m", messages=(Message("user", "hello there"),))
KEY = "sk-emulator-test-KEY-0123456789"


def openai_body(text: str = "hello there") -> dict[str, Any]:
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": text}]}


async def post(
    session: aiohttp.ClientSession, url: str, body: dict[str, Any], headers: dict[str, str]
) -> tuple[int, CIMultiDict[str], bytes]:
    async with session.post(url, json=body, headers=headers) as resp:
        return resp.status, resp.headers.copy(), await resp.read()


async def test_rpm_burst_then_openai_429(
    start_emulator: StartEmulator, session: aiohttp.ClientSession
) -> None:
    emu = start_emulator(accounts={KEY: AccountLimits(rpm=60)})
    url, auth = emu.url + "/v1/chat/completions", {"Authorization": f"Bearer {KEY}"}
    statuses = [(await post(session, url, openai_body(f"q{i}"), auth))[0] for i in range(60)]
    assert statuses == [200] * 60
    status, headers, body = await post(session, url, openai_body("one more"), auth)
    assert status == 429
    assert json.loads(body)["error"] | {"message": ""} == {
        "message": "",
        "type": "requests",
        "param": None,
        "code": "rate_limit_exceeded",
    }
    assert int(headers["retry-after"]) >= 1 and headers["x-ratelimit-remaining-requests"] == "0"
    with pytest.raises(ProviderError) as err:
        get_adapter("openai").parse(SPEC, status, headers, body)
    assert err.value.kind == "rate_limit" and 0 < (err.value.retry_after_s or 0) <= 1.0
    other = await post(session, url, openai_body(), {"Authorization": "Bearer another-key"})
    assert other[0] == 200, "limits are per key"
    assert emu.stats()["rate_limited"] == 1


async def test_anthropic_and_gemini_429_shapes(
    start_emulator: StartEmulator, session: aiohttp.ClientSession
) -> None:
    emu = start_emulator(accounts={KEY: AccountLimits(rpm=1)})
    anthropic = {"model": "claude-x", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}
    headers = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
    assert (await post(session, emu.url + "/v1/messages", anthropic, headers))[0] == 200
    status, got_headers, body = await post(session, emu.url + "/v1/messages", anthropic, headers)
    assert status == 429 and json.loads(body)["error"]["type"] == "rate_limit_error"
    assert got_headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert get_adapter("anthropic").rate_limits(got_headers).limit_requests == 1  # type: ignore[union-attr]

    gemini = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    url = emu.url + "/v1beta/models/gemini-2.5-flash:generateContent"
    status, got_headers, body = await post(session, url, gemini, {"x-goog-api-key": KEY})
    assert status == 429
    error = json.loads(body)["error"]
    assert error["status"] == "RESOURCE_EXHAUSTED" and error["details"][0]["retryDelay"].endswith("s")
    with pytest.raises(ProviderError) as err:
        get_adapter("gemini").parse(SPEC, status, got_headers, body)
    assert err.value.kind == "rate_limit" and (err.value.retry_after_s or 0) >= 1


async def test_input_tpm_and_success_headers(
    start_emulator: StartEmulator, session: aiohttp.ClientSession
) -> None:
    emu = start_emulator(accounts={KEY: AccountLimits(rpm=1000, input_tpm=100)})
    auth = {"Authorization": f"Bearer {KEY}"}
    status, headers, _ = await post(session, emu.url + "/v1/chat/completions", openai_body("a " * 60), auth)
    assert status == 200
    info = get_adapter("openai").rate_limits(headers)
    assert info is not None and info.limit_input_tokens == 100 and info.remaining_input_tokens == 100 - 63
    assert info.remaining_requests == 999
    status, _, body = await post(session, emu.url + "/v1/chat/completions", openai_body("b " * 60), auth)
    assert status == 429 and json.loads(body)["error"]["type"] == "tokens"


async def test_output_tpm_is_settled_after_generation(
    start_emulator: StartEmulator, session: aiohttp.ClientSession
) -> None:
    emu = start_emulator(accounts={KEY: AccountLimits(output_tpm=10)})
    headers = {"x-api-key": KEY}
    body = {
        "model": "claude-x",
        "max_tokens": 500,
        "messages": [{"role": "user", "content": "Explain tides."}],
    }
    assert (await post(session, emu.url + "/v1/messages", body, headers))[0] == 200
    status, got_headers, _ = await post(session, emu.url + "/v1/messages", body, headers)
    assert status == 429 and int(got_headers["retry-after"]) >= 1


async def test_key_never_in_stats_or_config(
    start_emulator: StartEmulator, session: aiohttp.ClientSession
) -> None:
    emu = start_emulator(accounts={KEY: AccountLimits(rpm=5)})
    await post(session, emu.url + "/v1/chat/completions", openai_body(), {"Authorization": f"Bearer {KEY}"})
    async with session.get(emu.url + "/_stats") as resp:
        text = await resp.text()
    assert KEY not in text and KEY not in repr(emu.config)
    stats = json.loads(text)
    assert stats["total"] == 1 and list(stats["by_key"].values()) == [1]
    assert len(next(iter(stats["by_key"]))) == 12


def test_accounts_by_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPECSTRESS_TEST_KEY", KEY)
    by_env = EmulatorConfig(accounts={"SPECSTRESS_TEST_KEY": AccountLimits(rpm=7)})
    by_value = EmulatorConfig(accounts={KEY: AccountLimits(rpm=7)})
    assert dict(by_env.accounts) == dict(by_value.accounts)
    assert dict(replace(by_env, seed=3).accounts) == dict(by_env.accounts)
