"""The per-account rate limiter's arithmetic and records, Ray-free (the actor is in `limiter`).

One limiter serves one provider account, whatever model keys share it. It holds three
`TokenBucket`s (requests, input tokens, output tokens per minute) sized to `margin` of the
limits, hands capacity to clients in short leases of a fraction of a second's worth, and
adapts: a 429 pauses every grant and cuts the rate multiplicatively, clean intervals add it
back in steps, and the provider's rate-limit headers can only lower what we think is left.

Why the buckets start nearly empty (`initial_burst_s`): a provider's bucket is in an
unknown state when we start, since an earlier run or a restarted limiter actor may have
drained it. Starting empty and refilling at `margin` of the rate can never overrun a
provider that enforces the same bucket, however drained it was, and the provider's slack
then grows by (1 - margin) of its rate every second. Sustained use is what we are measured
on and is unaffected: only the first minute's burst is forgone.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from actors.buckets import Clock, TokenBucket
from actors.settings import RateLimits
from actors.types import RateLimitInfo

Dimension = Literal["requests", "input_tokens", "output_tokens"]
DIMENSIONS: tuple[Dimension, ...] = ("requests", "input_tokens", "output_tokens")
_EPS = 1e-9
"""Slack for float round-off when counting whole units in a bucket."""
_WAITER_GRACE_S = 1.0
"""How late a refused client may come back and keep its place in the queue."""


@dataclass(frozen=True)
class AccountLimits(RateLimits):
    """A provider account's limits and how close the limiter runs to them.

    The emulator enforces a provider's `RateLimits` as they are; the limiter aims at `margin`
    of each (config's `engine.lease_margin`) and adapts to 429s and rate-limit headers.
    """

    margin: float = 0.98
    """Fraction of each limit the limiter targets, absorbing clock skew and estimation error."""
    lease_s: float = 0.2
    """A lease covers at most this many seconds of the account's rate (but always one request)."""
    lease_ttl_s: float = 2.0
    """Seconds a client may use a lease before returning what is left of it."""
    initial_burst_s: float = 0.0
    """Seconds of rate the buckets hold at start; 0 forgoes the start burst (see module doc)."""
    backoff_factor: float = 0.7
    """Multiplier on the effective rate after a rate-limit episode."""
    min_rate_factor: float = 0.1
    """Floor of the rate factor, as a fraction of the configured rate."""
    recover_step: float = 0.05
    """Rate factor added back after each clean `recover_interval_s`."""
    recover_interval_s: float = 5.0
    """Seconds without a rate limit that earn one recovery step."""
    default_retry_after_s: float = 2.0
    """Pause when a 429/529 came without a retry-after."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.margin <= 1:
            raise ValueError(f"AccountLimits.margin must be in (0, 1], got {self.margin}")
        if not 0 < self.backoff_factor < 1 or not 0 < self.min_rate_factor <= 1:
            raise ValueError("AccountLimits.backoff_factor and min_rate_factor must be in (0, 1)")
        for name in ("lease_s", "lease_ttl_s", "recover_interval_s", "default_retry_after_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"AccountLimits.{name} must be > 0, got {getattr(self, name)}")
        if self.initial_burst_s < 0 or self.recover_step <= 0:
            raise ValueError("AccountLimits.initial_burst_s must be >= 0 and recover_step > 0")

    def per_minute(self, dim: Dimension) -> float | None:
        return {"requests": self.rpm, "input_tokens": self.input_tpm, "output_tokens": self.output_tpm}[dim]


@dataclass(frozen=True)
class Lease:
    """Capacity granted to one client, to be used within `ttl_s` of receipt.

    A lease grants whole requests and the tokens to go with them. When nothing can be
    granted, every amount is 0 and `wait_s` says how long until a lease of the asked size
    (capped at one lease's worth) can be.
    """

    requests: int = 0
    input_tokens: float = 0.0
    output_tokens: float = 0.0
    wait_s: float = 0.0
    ttl_s: float = 0.0


@dataclass(frozen=True)
class Settlement:
    """Corrections a client sends back, batched over many requests.

    Deltas are actual minus estimated tokens: negative gives capacity back, positive
    borrows against the future. `unused_*` is what is left of leases the client let go.
    `rate_limited` counts 429/529 answers, `retry_after_s` is the longest wait they asked.
    """

    input_tokens_delta: float = 0.0
    output_tokens_delta: float = 0.0
    unused_requests: int = 0
    unused_input_tokens: float = 0.0
    unused_output_tokens: float = 0.0
    rate_limited: int = 0
    retry_after_s: float | None = None
    headers: RateLimitInfo | None = None
    completed: int = 0

    @property
    def empty(self) -> bool:
        return self == Settlement()


@dataclass
class _Counters:
    leases: int = 0
    refusals: int = 0
    granted_requests: int = 0
    granted_input_tokens: float = 0.0
    granted_output_tokens: float = 0.0
    returned_requests: int = 0
    completed: int = 0
    rate_limited: int = 0
    backoffs: int = 0
    recalibrations: int = 0


@dataclass
class _Waiter:
    """A refused client's place in the queue: the chunk it was told to come back for."""

    need: dict[Dimension, float]
    until: float


@dataclass
class LimiterCore:
    """Buckets and adaptive state of one account, on an injectable clock.

    Invariant: whatever the demand, capacity kept over any T seconds (granted, less what
    clients return unused, plus what they settle beyond their estimates) never exceeds
    what the buckets allow: `margin * limit * (T / 60)` plus the level at the start.
    Clients are refused rather than overdrawn; only late settlements push a level below 0.
    """

    limits: AccountLimits
    clock: Clock = time.monotonic
    rate_factor: float = field(default=1.0, init=False)
    paused_until: float = field(default=-math.inf, init=False)
    _base: dict[Dimension, float] = field(default_factory=dict, init=False, repr=False)
    _buckets: dict[Dimension, TokenBucket] = field(default_factory=dict, init=False, repr=False)
    _next_recovery: float = field(default=math.inf, init=False, repr=False)
    _last_backoff: float = field(default=-math.inf, init=False, repr=False)
    _clients: dict[str, float] = field(default_factory=dict, init=False, repr=False)
    _counters: _Counters = field(default_factory=_Counters, init=False, repr=False)
    _waiters: dict[str, _Waiter] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        for dim in DIMENSIONS:
            limit = self.limits.per_minute(dim)
            if limit is not None:
                self._add_bucket(dim, limit, level_s=self.limits.initial_burst_s)

    def _add_bucket(self, dim: Dimension, limit: float, *, level_s: float) -> None:
        self._base[dim] = limit
        capacity = limit * self.limits.margin * self.rate_factor
        level = min(capacity, capacity / 60.0 * level_s)
        self._buckets[dim] = TokenBucket(capacity, 60.0, self.clock, level=level)

    def lease(
        self, client_id: str, want_requests: int, want_input_tokens: float, want_output_tokens: float
    ) -> Lease:
        """Grant up to `want_requests` requests with their share of the wanted tokens.

        The grant is whole units of (1 request, want_input_tokens / want_requests,
        want_output_tokens / want_requests), so the caller shapes a unit to cover its
        largest pending request. At most `lease_s` of rate is granted, but at least one unit
        when the buckets hold it (a unit larger than a bucket waits for it to be full).
        """
        if want_requests < 1 or want_input_tokens < 0 or want_output_tokens < 0:
            raise ValueError(
                f"lease wants >= 1 request and >= 0 tokens, got {want_requests}, "
                f"{want_input_tokens}, {want_output_tokens}"
            )
        now = self.clock()
        self._clients[client_id] = now
        self._recover(now)
        if now < self.paused_until:
            self._counters.refusals += 1
            return Lease(wait_s=self.paused_until - now)
        unit = {"requests": 1.0, "input_tokens": want_input_tokens / want_requests}
        unit["output_tokens"] = want_output_tokens / want_requests
        reserved = self._reserved_ahead_of(client_id, now)
        cap = want_requests
        fit = want_requests
        for dim, bucket in self._buckets.items():
            if unit[dim] <= 0:
                continue
            cap = min(cap, max(1, math.floor(bucket.rate * self.limits.lease_s / unit[dim])))
            free = bucket.refill() - reserved.get(dim, 0.0)
            if unit[dim] <= bucket.capacity:
                fit = min(fit, math.floor(free / unit[dim] + _EPS))
            else:
                fit = min(fit, 1 if free >= bucket.capacity - _EPS else 0)
        granted = min(cap, fit)
        if granted < 1:
            self._counters.refusals += 1
            need = {d: min(cap * unit[d], b.capacity) for d, b in self._buckets.items()}
            wait = max(
                (
                    (reserved.get(d, 0.0) + need[d] - b.level) / b.rate
                    for d, b in self._buckets.items()
                    if unit[d] > 0
                ),
                default=0.0,
            )
            wait = max(wait, 1e-3)
            self._waiters[client_id] = _Waiter(need, until=now + wait + _WAITER_GRACE_S)
            return Lease(wait_s=wait)
        self._waiters.pop(client_id, None)
        for dim, bucket in self._buckets.items():
            bucket.take(granted * unit[dim])
        c = self._counters
        c.leases += 1
        c.granted_requests += granted
        c.granted_input_tokens += granted * unit["input_tokens"]
        c.granted_output_tokens += granted * unit["output_tokens"]
        return Lease(
            requests=granted,
            input_tokens=granted * unit["input_tokens"],
            output_tokens=granted * unit["output_tokens"],
            ttl_s=self.limits.lease_ttl_s,
        )

    def _reserved_ahead_of(self, client_id: str, now: float) -> dict[Dimension, float]:
        """Capacity held for clients refused before `client_id`, who come back in turn.

        Refused clients queue in order; each is told to return when the chunks of everyone
        ahead of it and its own will be there, and nobody behind it may take them. Without
        this, clients sleeping the same wait race for each chunk and the fastest starves
        the others. A client that does not come back in time loses its place.
        """
        for cid in [c for c, w in self._waiters.items() if w.until < now]:
            del self._waiters[cid]
        reserved: dict[Dimension, float] = {}
        for cid, waiter in self._waiters.items():
            if cid == client_id:
                break
            for dim, amount in waiter.need.items():
                reserved[dim] = reserved.get(dim, 0.0) + amount
        return reserved

    def settle(self, client_id: str, settlement: Settlement) -> None:
        """Apply a client's corrections: token deltas, returned leases, headers and 429s."""
        now = self.clock()
        self._clients[client_id] = now
        self._recover(now)
        s = settlement
        self._adjust("input_tokens", s.input_tokens_delta - s.unused_input_tokens)
        self._adjust("output_tokens", s.output_tokens_delta - s.unused_output_tokens)
        self._adjust("requests", -float(s.unused_requests))
        self._counters.returned_requests += s.unused_requests
        self._counters.completed += s.completed
        if s.headers is not None:
            self._recalibrate(s.headers)
        if s.rate_limited > 0:
            self._rate_limited(now, s.rate_limited, s.retry_after_s)

    def _adjust(self, dim: Dimension, delta: float) -> None:
        bucket = self._buckets.get(dim)
        if bucket is None or delta == 0:
            return
        if delta > 0:
            bucket.take(delta)
        else:
            bucket.give_back(-delta)

    def _recalibrate(self, info: RateLimitInfo) -> None:
        """Adopt a lower reported limit, and lower our level to what the provider says is left.

        Headers are stale by the request's latency and the settlement batching, so they are
        only ever used to become more careful, never to raise a level.
        """
        reported: dict[Dimension, tuple[float | None, float | None]] = {
            "requests": (info.limit_requests, info.remaining_requests),
            "input_tokens": (info.limit_input_tokens, info.remaining_input_tokens),
            "output_tokens": (info.limit_output_tokens, info.remaining_output_tokens),
        }
        for dim, (limit, remaining) in reported.items():
            if limit is not None and limit > 0:
                base = self._base.get(dim)
                if base is None:
                    self._add_bucket(dim, limit, level_s=self.limits.initial_burst_s)
                    self._counters.recalibrations += 1
                elif limit < base:
                    self._base[dim] = limit
                    self._buckets[dim].resize(limit * self.limits.margin * self.rate_factor)
                    self._counters.recalibrations += 1
            bucket = self._buckets.get(dim)
            if remaining is not None and bucket is not None:
                ceiling = remaining * self.limits.margin
                if bucket.refill() > ceiling:
                    bucket.level = ceiling
                    self._counters.recalibrations += 1

    def _rate_limited(self, now: float, count: int, retry_after_s: float | None) -> None:
        """Pause all grants, empty the buckets, and cut the rate once per episode.

        429s from requests sent before the cut arrive after it; counting each would
        collapse the rate, so one cut is made per `max(pause, recover_interval_s / 2)`.
        """
        self._counters.rate_limited += count
        pause = retry_after_s if retry_after_s is not None and retry_after_s > 0 else None
        pause = self.limits.default_retry_after_s if pause is None else pause
        self.paused_until = max(self.paused_until, now + pause)
        for bucket in self._buckets.values():
            bucket.level = min(bucket.refill(), 0.0)
        if now - self._last_backoff >= max(pause, self.limits.recover_interval_s / 2):
            self._last_backoff = now
            self._counters.backoffs += 1
            self._set_factor(max(self.limits.min_rate_factor, self.rate_factor * self.limits.backoff_factor))
        self._next_recovery = self.paused_until + self.limits.recover_interval_s

    def _recover(self, now: float) -> None:
        """Add `recover_step` for every clean `recover_interval_s` since the last episode."""
        if self.rate_factor >= 1.0 or now < self._next_recovery:
            return
        steps = math.floor((now - self._next_recovery) / self.limits.recover_interval_s) + 1
        self._next_recovery += steps * self.limits.recover_interval_s
        self._set_factor(min(1.0, self.rate_factor + steps * self.limits.recover_step))

    def _set_factor(self, factor: float) -> None:
        self.rate_factor = factor
        for dim, bucket in self._buckets.items():
            bucket.resize(self._base[dim] * self.limits.margin * factor)

    def stats(self) -> dict[str, Any]:
        """Counters and adaptive state, for the run manifest and for tests."""
        now = self.clock()
        self._recover(now)
        out: dict[str, Any] = dict(vars(self._counters))
        out["rate_factor"] = self.rate_factor
        out["paused_s"] = max(0.0, self.paused_until - now)
        out["clients"] = len(self._clients)
        out["active_clients"] = sum(1 for t in self._clients.values() if now - t < 10.0)
        out["waiting_clients"] = len(self._waiters)
        for dim, bucket in self._buckets.items():
            out[f"{dim}_level"] = bucket.refill()
            out[f"{dim}_per_minute"] = bucket.capacity
        return out
