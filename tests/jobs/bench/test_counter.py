"""The counting server (`jobs/bench/counter.py`): what it counts, and that our client reads its answers."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from types import SimpleNamespace
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from actors.client import ClientCore, ClientSettings
from actors.limiter import AccountLimits, LimiterCore
from actors.types import Endpoint, chat, spec_to_json
from jobs.bench.common import get_json
from jobs.bench.counter import COUNTS, counter_process, create_app

AUTH = {"Authorization": "Bearer any-key"}


def body(text: str) -> bytes:
    return json.dumps({"model": "m", "messages": [{"role": "user", "content": text}]}).encode()


async def post(session: aiohttp.ClientSession, url: str, data: bytes, **kw: Any) -> int:
    async with session.post(f"{url}/v1/chat/completions", data=data, **kw) as r:
        await r.read()
        return r.status


async def test_counts_answered_bodies_duplicates_arrivals_and_concurrency() -> None:
    async with TestServer(create_app(0.2, 0.2)) as server:
        url = str(server.make_url("")).rstrip("/")
        t0 = time.time()
        async with aiohttp.ClientSession(headers=AUTH) as s:
            # Five at once (one body twice), then one more alone: at most five in progress.
            statuses = await asyncio.gather(*(post(s, url, body(t)) for t in ["a", "a", "b", "c", "d"]))
            statuses.append(await post(s, url, body("a")))
            assert await post(s, url, body("e"), headers={"Authorization": "none"}) == 401
            assert await post(s, url, b'{"messages": []}') == 400
        t1 = time.time()
        counts = get_counts(server)

    assert statuses == [200] * 6
    sha = {t: hashlib.sha256(body(t)).hexdigest() for t in "abcd"}
    assert counts["answered"] == {sha["a"]: 3, sha["b"]: 1, sha["c"]: 1, sha["d"]: 1}
    assert counts["answered_total"] == 6 and counts["distinct"] == 4
    assert counts["requests"] == len(counts["arrivals"]) == 8  # refused requests arrived too
    assert all(t0 <= t <= t1 for t in counts["arrivals"])
    assert counts["max_in_progress"] == 5 and counts["in_progress"] == 0


async def test_a_call_whose_client_hung_up_is_still_counted_once_its_work_is_done() -> None:
    async with TestServer(create_app(0.3, 0.3)) as server:
        url = str(server.make_url("")).rstrip("/")
        async with aiohttp.ClientSession(headers=AUTH) as s:
            try:
                await post(s, url, body("gone"), timeout=aiohttp.ClientTimeout(total=0.05))
            except TimeoutError:
                pass
            else:
                raise AssertionError("the client should have given up first")
        assert get_counts(server)["answered_total"] == 0  # still working
        await asyncio.sleep(0.4)
        counts = get_counts(server)
    assert counts["answered_total"] == 1 and counts["in_progress"] == 0


def get_counts(server: TestServer) -> dict[str, Any]:
    return server.app[COUNTS].as_dict()


def _local_limiter() -> Any:
    """A limiter with no limits, in this process: the `.lease.remote` / `.settle.remote` a client calls."""
    core = LimiterCore(AccountLimits())

    async def lease(client_id: str, n: int, want_in: float, want_out: float, settlement: Any) -> Any:
        return core.lease(client_id, n, want_in, want_out)

    async def settle(client_id: str, settlement: Any) -> None:
        core.settle(client_id, settlement)

    return SimpleNamespace(lease=SimpleNamespace(remote=lease), settle=SimpleNamespace(remote=settle))


async def test_our_openai_client_parses_its_answers() -> None:
    async with TestServer(create_app()) as server:
        base = str(server.make_url("/v1"))
        ep = Endpoint("m", "openai", "gpt-4.1-mini", base, "COUNTER_KEY", "acc")
        limiter = _local_limiter()

        async def key_for(name: str) -> str:
            return "any-key"

        settings = ClientSettings(endpoints={"m": ep}, in_flight={"acc": 4})
        core = ClientCore(settings, lambda acc: limiter, key_for)
        spec = spec_to_json(chat("m", "Should I tell my neighbour's secret?", max_tokens=16))
        try:
            batch = await core.call_batch([("k1", spec)])
        finally:
            await core.close()
        assert server.app[COUNTS].as_dict(summary=True)["answered_total"] == 1
    row = batch.to_pylist()[0]
    assert row["status"] == "ok", row["error"]
    assert row["text"].startswith("Answer ") and row["finish_reason"] == "stop"
    assert row["input_tokens"] > 0 and row["output_tokens"] > 0 and row["flag"] is None


def test_counter_process_serves_in_its_own_process() -> None:
    with counter_process(0.0, 0.0, seed=1) as url:
        assert get_json(f"{url}/_counts?summary=1") == {
            "requests": 0,
            "answered_total": 0,
            "distinct": 0,
            "in_progress": 0,
            "max_in_progress": 0,
        }
