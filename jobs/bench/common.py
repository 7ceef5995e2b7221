"""What the engine benches share: loopback ports, servers in their own process, synthetic requests."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Iterator, Sequence
from typing import Any

import aiohttp
import polars as pl

from actors.types import chat, spec_to_json

PROMPT = "My neighbour asked me to keep a secret that could hurt someone else. Should I tell? " * 4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout_s: float = 30.0) -> None:
    """Return once something accepts connections on loopback `port` (a server in another process)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing accepts on 127.0.0.1:{port} after {timeout_s:.0f} s")


def get_json(url: str) -> Any:
    async def get() -> Any:
        async with aiohttp.ClientSession() as s, s.get(url) as r:
            r.raise_for_status()
            return await r.json()

    return asyncio.run(get())


def openai_model(url: str, key_env: str, model_id: str, limits: dict[str, Any]) -> dict[str, Any]:
    """A registry entry for an OpenAI-compatible server at `url` (`limits` with nulls dropped)."""
    return {
        "provider": "openai",
        "model_id": model_id,
        "base_url": f"{url}/v1",
        "api_key_env": key_env,
        "limits": {k: v for k, v in limits.items() if v is not None},
        "prices": {"input": 0.4, "output": 1.6},
        "params": {"max_tokens": 16},
    }


def request_chunks(n: int, tag: str, models: Sequence[str]) -> Iterator[pl.DataFrame]:
    """n distinct requests over `models` in turn, 10k at a time so the driver never holds them all.

    The same `tag` gives the same requests, hence the same call keys (what a resume relies on).
    """
    for start in range(0, n, 10_000):
        ids = range(start, min(n, start + 10_000))
        names = [models[i % len(models)] for i in ids]
        yield pl.DataFrame(
            {
                "model": names,
                "spec": [
                    spec_to_json(chat(m, f"{tag} #{i}: {PROMPT}")) for m, i in zip(names, ids, strict=True)
                ],
            }
        )
