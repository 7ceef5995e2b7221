"""The counting server (`jobs/bench/counter.py`): what it counts, and that our client reads its answers."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from actors.types import chat, spec_to_json
from jobs.bench.common import get_json
from jobs.bench.counter import COUNTS, counter_process, create_app
from tests.actors.test_client import client_core

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


async def test_our_openai_client_parses_its_answers(tmp_path: Path) -> None:
    async with TestServer(create_app()) as server:
        core = client_core(str(server.make_url("/v1")), "any-key", tmp_path)
        spec = spec_to_json(chat("m", "Should I tell my neighbour's secret?", max_tokens=16))
        try:
            batch = await core.call_batch([("k1", spec)], "s")
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
