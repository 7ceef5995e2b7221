"""A counting OpenAI-compatible server: the independent witness of what a run paid for.

It shares no code with the project's emulator (`actors/emulator`), so a bug there cannot hide
one in the engine. It answers `POST /v1/chat/completions` (any Bearer key) after a random
latency, and records every request's arrival time (`time.time()`), how many times each
request body (by sha256) was answered, and the most requests it had in progress at once.
`GET /_counts` returns them; `GET /_counts?summary=1` leaves out the per-body counts and the
arrival times (cheap enough to poll).

A request counts as answered, that is billed, when the handler has produced its answer,
whether or not the client is still there to read it: providers bill the work done, and a
client killed mid-call has paid for the calls it had on the wire. The work is shielded from
cancellation, so a client's disconnect never stops the count. A client that dies before its
body has arrived has sent no request: its arrival is recorded, nothing is answered.

Run it in its own process (`python -m jobs.bench.counter --port P`, or `counter_process`), so
that it keeps counting while the client side is killed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

from aiohttp import web

from jobs.bench.common import free_port, wait_for_port


class Counts:
    """What the server saw; one instance per server, touched only from its event loop."""

    def __init__(self, latency_min: float, latency_max: float, seed: int) -> None:
        if not 0 <= latency_min <= latency_max:
            raise ValueError(f"need 0 <= latency_min <= latency_max, got {latency_min}, {latency_max}")
        self._latency = (latency_min, latency_max)
        self._rng = random.Random(seed)
        self.arrivals: list[float] = []
        self.answered: Counter[str] = Counter()
        self.in_progress = 0
        self.max_in_progress = 0

    async def answer(self, body: bytes, request: dict[str, Any]) -> dict[str, Any]:
        """Wait the latency, then count `body` as answered (billed) and return the completion."""
        self.in_progress += 1
        self.max_in_progress = max(self.max_in_progress, self.in_progress)
        try:
            await asyncio.sleep(self._rng.uniform(*self._latency))
            digest = hashlib.sha256(body).hexdigest()
            self.answered[digest] += 1
            return completion(request, digest)
        finally:
            self.in_progress -= 1

    def as_dict(self, *, summary: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "requests": len(self.arrivals),
            "answered_total": sum(self.answered.values()),
            "distinct": len(self.answered),
            "in_progress": self.in_progress,
            "max_in_progress": self.max_in_progress,
        }
        if not summary:
            out.update(answered=dict(self.answered), arrivals=self.arrivals)
        return out


def completion(request: dict[str, Any], digest: str) -> dict[str, Any]:
    """A chat.completion as OpenAI returns it; tokens are characters / 4, as good as any count here."""
    prompt = sum(len(str(m.get("content", ""))) for m in request["messages"]) // 4 + 1
    text = f"Answer {digest[:16]}."
    output = len(text) // 4
    return {
        "id": f"chatcmpl-{digest[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.get("model", ""),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": output, "total_tokens": prompt + output},
    }


def _error(status: int, message: str, kind: str) -> web.Response:
    return web.json_response({"error": {"message": message, "type": kind}}, status=status)


COUNTS = web.AppKey("counts", Counts)


async def _chat(request: web.Request) -> web.Response:
    counts = request.app[COUNTS]
    counts.arrivals.append(time.time())
    if not request.headers.get("Authorization", "").startswith("Bearer "):
        return _error(401, "missing Bearer key", "invalid_request_error")
    body = await request.read()
    try:
        parsed = json.loads(body)
        valid = isinstance(parsed["messages"], list) and bool(parsed["messages"])
    except (ValueError, KeyError, TypeError):
        valid = False
    if not valid:
        return _error(400, "body must be JSON with a non-empty 'messages' list", "invalid_request_error")
    # Shielded: a client that hangs up mid-call does not cancel the (billed) work.
    return web.json_response(await asyncio.shield(counts.answer(body, parsed)))


async def _counts(request: web.Request) -> web.Response:
    return web.json_response(request.app[COUNTS].as_dict(summary=request.query.get("summary") == "1"))


def create_app(latency_min: float = 0.0, latency_max: float = 0.0, seed: int = 0) -> web.Application:
    app = web.Application()
    app[COUNTS] = Counts(latency_min, latency_max, seed)
    app.add_routes([web.post("/v1/chat/completions", _chat), web.get("/_counts", _counts)])
    return app


@contextlib.contextmanager
def counter_process(latency_min: float, latency_max: float, seed: int = 0) -> Iterator[str]:
    """The counting server in its own process; yields its URL once it accepts."""
    port = free_port()
    args = ["--port", str(port), "--latency-min", str(latency_min), "--latency-max", str(latency_max)]
    proc = subprocess.Popen([sys.executable, "-m", "jobs.bench.counter", *args, "--seed", str(seed)])
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m jobs.bench.counter", description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--latency-min", type=float, default=0.0, help="seconds, uniform lower bound")
    p.add_argument("--latency-max", type=float, default=0.0, help="seconds, uniform upper bound")
    p.add_argument("--seed", type=int, default=0, help="seeds the latencies")
    a = p.parse_args(argv)
    app = create_app(a.latency_min, a.latency_max, a.seed)
    web.run_app(app, host=a.host, port=a.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
