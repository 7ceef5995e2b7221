"""A model key without an API key (`api_key_env: null`, a local server): no key is asked for, and
no auth header is sent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from actors.client import ClientCore, ClientSettings
from actors.metrics import CallMetrics
from actors.retry import RetryPolicy
from actors.types import Endpoint, chat, spec_to_json
from actors.wal import WalSettings
from tests.actors.test_client import OpenLimiter
from tests.actors.test_metrics import MetricFactory

ANSWER = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "model": "SmolLM2-135M-Instruct",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
}


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    """A stand-in OpenAI-compatible server on loopback that records each request's headers."""
    seen: list[dict[str, str]] = []

    async def completions(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.json_response(ANSWER)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/v1", seen
    await runner.cleanup()


async def test_a_keyless_model_sends_no_auth_header_and_asks_for_no_key(
    server: tuple[str, list[dict[str, str]]], tmp_path: Path
) -> None:
    url, seen = server
    ep = Endpoint("local", "openai", "SmolLM2-135M-Instruct", url, None, "acct")
    settings = ClientSettings(
        endpoints={"local": ep},
        wal=WalSettings(str(tmp_path), "test"),
        in_flight={"acct": 2},
        policy=RetryPolicy(),
    )
    asked: list[str] = []

    async def key_for(name: str) -> str | None:
        asked.append(name)
        return None

    limiter = OpenLimiter()
    core = ClientCore(settings, lambda account: limiter, key_for, metrics=CallMetrics(MetricFactory()))
    rows = await core.call_batch([("k1", spec_to_json(chat("local", "hi", max_tokens=8)))], "s")
    assert rows.column("status").to_pylist() == ["ok"] and rows.column("text").to_pylist() == ["hello"]
    assert asked == []
    assert len(seen) == 1 and not {h.lower() for h in seen[0]} & {"authorization", "x-api-key"}
    await core.close()
