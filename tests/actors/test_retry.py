"""The one retry policy: its backoff schedule, and the batch client retrying through it.

The batch client is driven against a scripted aiohttp server on loopback, which records
when each try arrived, so waits are checked as the server saw them.
"""

from __future__ import annotations

import itertools
import json
import random
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

import aiohttp
import pytest
from aiohttp import web

from actors.errors import RETRYABLE, ProviderError
from actors.providers.batch.base import BatchHttp
from actors.retry import RetryPolicy

# This module's sessions and servers must close: an unclosed one fails the test here.
pytestmark = pytest.mark.filterwarnings("error::ResourceWarning")

POLICY = RetryPolicy(max_attempts=6, base_s=1.0, max_s=20.0)


def test_waits_lie_between_half_and_all_of_the_capped_doubling() -> None:
    rng = random.Random(7)
    for attempt in range(1, 10):
        ceiling = min(20.0, 2.0 ** (attempt - 1))
        assert POLICY.ceiling_s(attempt) == ceiling
        waits = [POLICY.backoff_s(attempt, None, rng) for _ in range(300)]
        assert all(ceiling / 2 <= w <= ceiling for w in waits), attempt
        # The draws fill the range rather than sitting at one end.
        assert min(waits) < 0.6 * ceiling and max(waits) > 0.9 * ceiling
    assert max(POLICY.backoff_s(30, None, rng) for _ in range(300)) <= 20.0  # the cap holds


def test_jitter_varies_and_a_seed_repeats_the_schedule() -> None:
    rng = random.Random(1)
    assert len({POLICY.backoff_s(3, None, rng) for _ in range(50)}) == 50

    def schedule(seed: int) -> list[float]:
        rng = random.Random(seed)
        return [POLICY.backoff_s(a, None, rng) for a in range(1, 6)]

    assert schedule(5) == schedule(5) != schedule(6)


def test_retry_after_is_a_floor_even_past_the_cap() -> None:
    rng = random.Random(3)
    assert POLICY.backoff_s(1, 7.5, rng) == 7.5  # longer than the jitter: wait what was asked
    assert POLICY.backoff_s(2, 45.0, rng) == 45.0  # past max_s: the provider refuses until then
    assert all(POLICY.backoff_s(5, 0.5, rng) >= 8.0 for _ in range(100))  # shorter: the jitter wins
    assert POLICY.backoff_s(1, 0.0, rng) >= 0.5


def test_the_policy_gives_up_on_permanent_errors_and_after_the_last_try() -> None:
    for kind in RETRYABLE:
        err = ProviderError(kind, "x")  # type: ignore[arg-type]
        assert not POLICY.gives_up(err, 5) and POLICY.gives_up(err, 6)
    for kind in ("client", "auth", "quota"):
        assert POLICY.gives_up(ProviderError(kind, "x"), 1)  # type: ignore[arg-type]


Reply = tuple[int, dict[str, str], dict[str, object]]
"""A scripted answer: status, headers, JSON body."""


@asynccontextmanager
async def scripted(replies: Iterable[Reply]) -> AsyncIterator[tuple[str, list[float]]]:
    """A loopback server answering each request with the next reply; yields its URL and arrival times."""
    script, arrivals = list(replies), []

    async def handle(request: web.Request) -> web.Response:
        arrivals.append(time.monotonic())
        status, headers, body = script.pop(0)
        return web.Response(
            status=status, headers=headers, body=json.dumps(body).encode(), content_type="application/json"
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", arrivals
    finally:
        await runner.cleanup()


def gaps(arrivals: list[float]) -> list[float]:
    """Seconds between successive tries, as the server saw them."""
    return [b - a for a, b in itertools.pairwise(arrivals)]


def error(kind: str, message: str = "try later") -> dict[str, object]:
    return {"error": {"type": kind, "message": message}}


FAST = RetryPolicy(max_attempts=4, base_s=0.001, max_s=0.002)
"""Jitter too short to matter, so the waits the server sees are the retry-afters."""


async def test_the_batch_client_retries_429_and_5xx_honouring_retry_after() -> None:
    replies: list[Reply] = [
        (429, {"retry-after": "0.2"}, error("rate_limit_error")),
        (529, {"retry-after-ms": "100"}, error("overloaded_error")),
        (500, {}, error("server_error")),
        (200, {}, {"id": "batch_1"}),
    ]
    async with scripted(replies) as (url, arrivals), aiohttp.ClientSession() as session:
        http = BatchHttp(session, {}, policy=FAST, rng=random.Random(0))
        body = await http.request("GET", url + "/v1/batches/batch_1")
    assert json.loads(body) == {"id": "batch_1"}
    waited = gaps(arrivals)
    assert len(waited) == 3 and waited[0] >= 0.2 and waited[1] >= 0.1 and waited[2] < 0.5


async def test_the_batch_client_draws_its_waits_from_the_policy() -> None:
    policy = RetryPolicy(max_attempts=3, base_s=0.1, max_s=0.2)
    replies: list[Reply] = [(503, {}, error("overloaded_error"))] * 3
    async with scripted(replies) as (url, arrivals), aiohttp.ClientSession() as session:
        http = BatchHttp(session, {}, policy=policy, rng=random.Random(11))
        with pytest.raises(ProviderError) as caught:
            await http.request("GET", url + "/v1/batches/b")
    assert caught.value.kind == "overloaded" and caught.value.status == 503
    expected = random.Random(11)
    waits = [policy.backoff_s(a, None, expected) for a in (1, 2)]  # the same seed, the same schedule
    assert len(arrivals) == 3  # max_attempts tries, then the error
    waited = gaps(arrivals)
    assert all(w <= g < w + 0.5 for w, g in zip(waits, waited, strict=True)), (waits, waited)


async def test_the_batch_client_does_not_retry_a_400_or_a_create() -> None:
    replies: list[Reply] = [
        (400, {}, error("invalid_request_error", "bad jsonl")),
        (500, {"retry-after": "0"}, error("server_error")),
    ]
    async with scripted(replies) as (url, arrivals), aiohttp.ClientSession() as session:
        http = BatchHttp(session, {}, policy=FAST, rng=random.Random(0))
        with pytest.raises(ProviderError) as bad:
            await http.request("POST", url + "/v1/files")
        with pytest.raises(ProviderError) as create:
            await http.request("POST", url + "/v1/batches", json_body={}, retry=False)
    assert len(arrivals) == 2  # one try each
    assert bad.value.kind == "client" and "POST /v1/files: bad jsonl" in str(bad.value)
    assert create.value.kind == "server" and create.value.retry_after_s == 0.0
