"""The fan-out's counters and gauges, exported through Ray's metrics API (`ray.util.metrics`).

Ray's metrics agent on each node serves them to Prometheus (and so to the Ray dashboard's
Grafana panels) with a `ray_` prefix, counters with a `_total` suffix, e.g.
`ray_specstress_requests_total{model="o3",account="openai"}`. Every client actor reports
its own series; sum over `WorkerId` for the cluster's figure.
"""

from __future__ import annotations

import contextlib
from collections import Counter as Tally
from collections.abc import Iterator
from typing import Any

TAGS = ("model", "account")

COUNTERS = {
    "specstress_requests": "HTTP attempts sent to providers (first tries and retries)",
    "specstress_rate_limited": "429/529 answers received",
    "specstress_retries": "attempts after the first",
    "specstress_input_tokens": "input tokens billed",
    "specstress_output_tokens": "output tokens billed",
    "specstress_cost_usd": "dollars spent, at the registry's prices",
    "specstress_failed": "requests that ended as failed after their retries",
}
GAUGES = {
    "specstress_in_flight": "HTTP requests open now",
    "specstress_queue_depth": "requests a client holds that wait for a lease or a slot",
}
LIMITER_TAGS = ("account",)
LIMITER_GAUGES = {
    "specstress_limiter_rate_factor": "share of the configured rate the limiter grants (1 until a 429)",
    "specstress_limiter_waiting_clients": "clients refused a lease and waiting for capacity",
}


class CallMetrics:
    """The client actor's metrics: counters per (model, account), gauges kept as local levels.

    `factory` is `ray.util.metrics` in an actor; tests may pass any module-like object with
    `Counter` and `Gauge`.
    """

    def __init__(self, factory: Any = None) -> None:
        if factory is None:
            from ray.util import metrics as factory
        self._counters = {n: factory.Counter(n, description=d, tag_keys=TAGS) for n, d in COUNTERS.items()}
        self._gauges = {n: factory.Gauge(n, description=d, tag_keys=TAGS) for n, d in GAUGES.items()}
        self._levels: dict[str, Tally[tuple[str, str]]] = {n: Tally() for n in GAUGES}

    def add(self, name: str, model: str, account: str, value: float = 1.0) -> None:
        if value:
            self._counters[name].inc(value, tags={"model": model, "account": account})

    def shift(self, name: str, model: str, account: str, delta: int) -> None:
        """Move a gauge's level by `delta` and report it."""
        level = self._levels[name]
        level[(model, account)] += delta
        self._gauges[name].set(level[(model, account)], tags={"model": model, "account": account})

    @contextlib.contextmanager
    def level(self, name: str, model: str, account: str) -> Iterator[None]:
        """Count one more in gauge `name` for the duration of the block."""
        self.shift(name, model, account, 1)
        try:
            yield
        finally:
            self.shift(name, model, account, -1)

    def finished(self, row: dict[str, Any], account: str) -> None:
        """Count one request's end: tokens, dollars, retries, 429s, failure."""
        model = row["model"]
        self.add("specstress_retries", model, account, max(row["attempts"] - 1, 0))
        self.add("specstress_rate_limited", model, account, row["rate_limited"])
        self.add("specstress_input_tokens", model, account, row.get("input_tokens") or 0)
        self.add("specstress_output_tokens", model, account, row.get("output_tokens") or 0)
        self.add("specstress_cost_usd", model, account, row.get("cost_usd") or 0.0)
        if row["status"] == "failed":
            self.add("specstress_failed", model, account)


class LimiterMetrics:
    """The limiter actor's gauges for one account."""

    def __init__(self, account: str, factory: Any = None) -> None:
        if factory is None:
            from ray.util import metrics as factory
        self._tags = {"account": account}
        self._gauges = {
            n: factory.Gauge(n, description=d, tag_keys=LIMITER_TAGS) for n, d in LIMITER_GAUGES.items()
        }

    def report(self, rate_factor: float, waiting: int) -> None:
        self._gauges["specstress_limiter_rate_factor"].set(rate_factor, tags=self._tags)
        self._gauges["specstress_limiter_waiting_clients"].set(waiting, tags=self._tags)
