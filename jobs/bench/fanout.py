"""`specstress bench fanout`: the engine against the emulator, each figure beside a baseline.

- `ceiling_rps`: end-to-end requests/s of the engine (requests table -> Ray client actors ->
  store shards) with instant answers, next to `baseline_ceiling_rps`, a plain asyncio +
  aiohttp loop with a fixed semaphore against the same emulator in the same run.
- `utilization` / `share_429`: the share of the binding limit sustained over a window of
  at least two minutes while the emulator enforces the limits, and the share of 429s.
- `peak_rss_mb` / `rss_growth`: the driver's peak RSS while a 200k-request stage streams
  through, and its ratio to the peak for a 20k-request stage (each in a fresh process).
The emulator runs in its own process, as a provider would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import polars as pl
import psutil

from actors.emulator.config import AccountLimits, EmulatorConfig, LatencyModel
from jobs.bench.common import PROMPT, free_port, get_json, openai_model, request_chunks, wait_for_port

BENCH_KEY_ENV = "SPECSTRESS_BENCH_KEY"
MODEL = "bench_model"


def _serve(config_kwargs: dict[str, Any], port: int) -> None:
    from actors.emulator.server import serve

    serve(EmulatorConfig(**config_kwargs), host="127.0.0.1", port=port)


@contextlib.contextmanager
def emulator_process(**config_kwargs: Any) -> Iterator[str]:
    """The emulator (built from `EmulatorConfig` kwargs) in its own process; yields its URL when it accepts."""
    port = free_port()
    proc = mp.get_context("spawn").Process(target=_serve, args=(config_kwargs, port), daemon=True)
    proc.start()
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.join(5)


def _config_yaml(url: str, run_dir: str, *, rpm: float | None, input_tpm: float | None) -> str:
    limits = {"max_in_flight": 256, "rpm": rpm, "input_tpm": input_tpm}
    return json.dumps(
        {
            "run_dir": run_dir,
            "engine": {"num_clients": 2, "batch_size": 128, "window_per_model": 4096, "flush_rows": 5000},
            "models": {MODEL: openai_model(url, BENCH_KEY_ENV, "gpt-4.1-mini", limits)},
        }
    )


def _engine_run(
    url: str, n: int, *, rpm: float | None = None, input_tpm: float | None = None
) -> dict[str, Any]:
    """Run one stage of n requests through the engine; returns timings and counts."""
    from actors.store import CallStore
    from jobs.config import load_config
    from jobs.driver import start_ray
    from jobs.engine.engine import Engine
    from jobs.engine.rundir import Manifest, RunDir

    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "bench.yaml"
        cfg.write_text(_config_yaml(url, f"{tmp}/run", rpm=rpm, input_tpm=input_tpm))
        conf = load_config(cfg)
        start_ray(conf)
        run = RunDir.open(conf.run_dir)
        engine = Engine(conf, run, Manifest(run.root), CallStore(f"{tmp}/cache"))
        path = engine.write_requests("bench", request_chunks(n, f"{time.time_ns()}", [MODEL]))
        engine.start_clients()
        t0 = time.monotonic()
        calls = engine.run("bench", path)
        elapsed = time.monotonic() - t0
        finished = engine.store.scan(["status", "finished_at"]).filter(pl.col("status") == "ok").collect()
        engine.close()
    return {"elapsed_s": elapsed, "ok": calls.ok, "made": calls.made, "finished_at": finished["finished_at"]}


async def _baseline(url: str, n: int, concurrency: int = 64) -> float:
    """A plain asyncio + aiohttp loop with a fixed semaphore: the reference ceiling."""
    sem = asyncio.Semaphore(concurrency)
    headers = {"Authorization": f"Bearer {os.environ[BENCH_KEY_ENV]}"}
    tag = time.time_ns()

    async def one(session: aiohttp.ClientSession, i: int) -> None:
        body = {
            "model": "gpt-4.1-mini",
            "max_tokens": 16,
            "messages": [{"role": "user", "content": f"{tag} #{i}: {PROMPT}"}],
        }
        async with sem, session.post(f"{url}/v1/chat/completions", json=body, headers=headers) as r:
            await r.read()

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        t0 = time.monotonic()
        await asyncio.gather(*(one(session, i) for i in range(n)))
        return n / (time.monotonic() - t0)


def ceiling(n: int) -> dict[str, float]:
    with emulator_process(latency=LatencyModel(0.0, 0.0)) as url:
        baseline = asyncio.run(_baseline(url, n))
        ours = _engine_run(url, n)
    return {
        "ceiling_rps": ours["made"] / ours["elapsed_s"],
        "baseline_ceiling_rps": baseline,
        "ceiling_requests": n,
    }


def utilization(window_s: float, rpm: float = 3000, input_tpm: float = 400_000) -> dict[str, float]:
    """Share of the binding limit sustained over `window_s`, measured on answered requests."""
    warmup_s = 10.0
    n = int(rpm / 60 * (window_s + warmup_s + 10))
    limits = {BENCH_KEY_ENV: AccountLimits(rpm=rpm, input_tpm=input_tpm)}
    with emulator_process(latency=LatencyModel(0.2, 0.0), accounts=limits) as url:
        ours = _engine_run(url, n, rpm=rpm, input_tpm=input_tpm)
        stats = get_json(f"{url}/_stats")
    times = ours["finished_at"].sort()
    t0 = times[0] + timedelta(seconds=warmup_s)
    in_window = times.filter((times >= t0) & (times < t0 + timedelta(seconds=window_s))).len()
    prompt_tokens = len(PROMPT) // 4
    binding_rps = min(rpm / 60, input_tpm / 60 / max(prompt_tokens, 1))
    return {
        "utilization": in_window / (binding_rps * window_s),
        "share_429": stats["rate_limited"] / max(stats["total"], 1),
        "utilization_window_s": window_s,
        "limit_rpm": rpm,
        "limit_input_tpm": input_tpm,
    }


def _peak_rss_of_stage(n: int) -> float:
    """Run an n-request stage in a fresh process; returns its driver's peak RSS in MB."""
    out = subprocess.run(
        [sys.executable, "-m", "jobs.bench.fanout", "_rss", str(n)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ},
    )
    return float(out.stdout.strip().splitlines()[-1])


def _rss_child(n: int) -> None:
    peak = 0.0
    me = psutil.Process()
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, me.memory_info().rss / 2**20)
            time.sleep(0.05)

    with emulator_process(latency=LatencyModel(0.0, 0.0)) as url:
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _engine_run(url, n)
        done.set()
        sampler.join()
    print(f"{peak:.1f}")


def memory(small: int, large: int) -> dict[str, float]:
    small_mb = _peak_rss_of_stage(small)
    large_mb = _peak_rss_of_stage(large)
    return {
        "peak_rss_mb": large_mb,
        "peak_rss_mb_small": small_mb,
        "rss_growth": large_mb / small_mb,
        "rss_requests_small": small,
        "rss_requests_large": large,
    }


def run_bench(what: str, *, quick: bool = False) -> dict[str, Any]:
    """All fan-out figures; `quick` shrinks every phase for a smoke test."""
    if what != "fanout":
        raise ValueError(f"unknown bench {what!r}")
    os.environ.setdefault(BENCH_KEY_ENV, "bench-" + os.urandom(8).hex())
    t0 = time.monotonic()
    result: dict[str, Any] = {}
    result.update(ceiling(2_000 if quick else 30_000))
    result.update(utilization(20.0 if quick else 120.0, rpm=600 if quick else 3000))
    result.update(memory(2_000, 20_000) if quick else memory(20_000, 200_000))
    result["bench_seconds"] = time.monotonic() - t0
    result["cpu_count"] = os.cpu_count()
    result["quick"] = quick
    return result


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "_rss":
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        _rss_child(int(sys.argv[2]))
