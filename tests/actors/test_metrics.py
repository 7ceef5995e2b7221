"""The fan-out's Ray metrics: recorded per model and account, and served by Ray's Prometheus endpoint."""

from __future__ import annotations

import time
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from actors.emulator.config import FaultRates
from actors.emulator.server import EmulatorServer
from actors.metrics import COUNTERS, GAUGES, CallMetrics
from tests.conftest import emulator_config
from tests.jobs.engine.test_engine import make_engine, requests


class _Metric:
    """Stands in for a `ray.util.metrics` Counter or Gauge and keeps what it was given."""

    def __init__(self, name: str, description: str = "", tag_keys: tuple[str, ...] = ()) -> None:
        self.name, self.tag_keys = name, tag_keys
        self.values: dict[tuple[str, ...], float] = defaultdict(float)

    def inc(self, value: float, tags: dict[str, str]) -> None:
        assert tuple(tags) == self.tag_keys
        self.values[tuple(tags.values())] += value

    def set(self, value: float, tags: dict[str, str]) -> None:
        self.values[tuple(tags.values())] = value


class MetricFactory:
    """Stands in for `ray.util.metrics`: its counters and gauges keep what they were given."""

    def __init__(self) -> None:
        self.made: dict[str, _Metric] = {}

    def Counter(self, name: str, **kw: Any) -> _Metric:  # named like ray.util.metrics.Counter
        self.made[name] = _Metric(name, **kw)
        return self.made[name]

    Gauge = Counter


def test_call_metrics_count_a_request_by_model_and_account() -> None:
    factory = MetricFactory()
    m = CallMetrics(factory)
    assert set(factory.made) == set(COUNTERS) | set(GAUGES)
    with m.level("specstress_in_flight", "o3", "openai"):
        assert factory.made["specstress_in_flight"].values[("o3", "openai")] == 1
    assert factory.made["specstress_in_flight"].values[("o3", "openai")] == 0
    row = {"model": "o3", "attempts": 3, "rate_limited": 1, "status": "ok", "input_tokens": 100}
    m.finished({**row, "output_tokens": 20, "cost_usd": 0.5}, "openai")
    m.finished({**row, "status": "failed", "output_tokens": None, "cost_usd": 0.0}, "openai")
    got = {name: dict(metric.values) for name, metric in factory.made.items()}
    assert got["specstress_retries"] == {("o3", "openai"): 4}
    assert got["specstress_rate_limited"] == {("o3", "openai"): 2}
    assert got["specstress_input_tokens"] == {("o3", "openai"): 200}
    assert got["specstress_output_tokens"] == {("o3", "openai"): 20}
    assert got["specstress_cost_usd"] == {("o3", "openai"): 0.5}
    assert got["specstress_failed"] == {("o3", "openai"): 1}


def _scrape(port: int) -> dict[str, float]:
    """Sum every `ray_specstress_*` series of the node's Prometheus endpoint by metric name and model."""
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out: dict[str, float] = defaultdict(float)
    for line in body.splitlines():
        if line.startswith("ray_specstress_"):
            name, _, rest = line.partition("{")
            model = rest.split('model="', 1)[1].split('"', 1)[0] if 'model="' in rest else ""
            out[f"{name}[{model}]"] += float(line.rsplit(" ", 1)[1])
    return out


@pytest.mark.usefixtures("ray_local")
def test_metrics_reach_the_prometheus_endpoint(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    import ray

    port = ray._private.worker._global_node.metrics_export_port
    with EmulatorServer(emulator_config(faults=FaultRates(server_500=0.2), seed=3)) as emu:
        engine = make_engine(tmp_path, emu.url, models=("m_openai", "m_gemini"))
        calls = engine.run("s", engine.write_requests("s", requests(["m_openai", "m_gemini"], 40)))
        sent = emu.stats()["total"]
        deadline = time.monotonic() + 90  # the agent exports every few seconds
        seen: dict[str, float] = {}
        while time.monotonic() < deadline:
            seen = _scrape(port)
            requests_total = seen.get("ray_specstress_requests_total[m_openai]", 0) + seen.get(
                "ray_specstress_requests_total[m_gemini]", 0
            )
            if requests_total >= sent:
                break
            time.sleep(2)
        engine.close()
    assert requests_total == sent  # every HTTP attempt the emulator saw, once
    assert calls.retries > 0
    retries = seen["ray_specstress_retries_total[m_openai]"] + seen["ray_specstress_retries_total[m_gemini]"]
    assert retries == calls.retries
    assert seen["ray_specstress_output_tokens_total[m_gemini]"] > 0
    assert seen["ray_specstress_cost_usd_total[m_openai]"] > 0
    assert "ray_specstress_in_flight[m_openai]" in seen and "ray_specstress_queue_depth[m_gemini]" in seen
    assert "ray_specstress_limiter_rate_factor[]" in seen
    # Restartable actors get plain, inlined constructor arguments (ray-project/ray#53727).
    assert "constructor arguments in the object store" not in capfd.readouterr().err
