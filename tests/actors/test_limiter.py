"""The account limiter: its core on a fake clock, the lease client, and the Ray actor across processes."""

from __future__ import annotations

import asyncio
import heapq
import os
import random
import time

import pytest
import ray
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.buckets import TokenBucket
from actors.lease_client import LeaseClient, lease_client_for
from actors.limiter import AccountLimits, Lease, LimiterCore, Settlement, get_limiter
from actors.types import RateLimitInfo


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


# --- LimiterCore ---------------------------------------------------------------------------------

step = st.tuples(
    st.floats(0.0, 3.0),  # seconds since the previous step
    st.integers(0, 4),  # client
    st.integers(1, 40),  # requests wanted
    st.integers(1, 3000),  # input tokens per request
    st.floats(0.0, 1.0),  # share of the grant the client ends up using
)


@settings(max_examples=60, deadline=None)
@given(steps=st.lists(step, min_size=1, max_size=300), full_start=st.booleans())
def test_grants_never_overrun_a_provider_bucket(steps: list, full_start: bool) -> None:
    """Whatever the demand, a provider enforcing the same buckets never has to say 429.

    With no start burst this holds even against a provider whose buckets start empty; with
    a full-minute start burst, against one that starts full (as the emulator does).
    """
    clock = FakeClock()
    limits = AccountLimits(rpm=600, input_tpm=100_000, initial_burst_s=60.0 if full_start else 0.0)
    core = LimiterCore(limits, clock=clock)
    start = 1.0 if full_start else 0.0
    server = {
        "requests": TokenBucket(600, clock=clock, level=600 * start),
        "input_tokens": TokenBucket(100_000, clock=clock, level=100_000 * start),
    }
    unused: dict[int, tuple[int, float]] = {}
    for dt, client, want, per_request, used_share in steps:
        clock.t += dt
        if client in unused:  # the previous lease's remainder comes back a step later
            r, i = unused.pop(client)
            core.settle(str(client), Settlement(unused_requests=r, unused_input_tokens=i))
        lease = core.lease(str(client), want, want * per_request, 0)
        assert lease.requests <= want
        if lease.requests == 0:
            assert lease.wait_s > 0
            continue
        used = round(lease.requests * used_share)
        assert server["requests"].try_take(used)
        assert server["input_tokens"].try_take(used * per_request)
        unused[client] = (lease.requests - used, (lease.requests - used) * per_request)


def _simulate(
    core: LimiterCore, clock: FakeClock, clients: int, seconds: float, per_request: int
) -> list[int]:
    """Clients that always want more, each sleeping the wait the limiter tells it; requests per client."""
    queue = [(clock.t + 0.01 * c, c) for c in range(clients)]
    heapq.heapify(queue)
    end = clock.t + seconds
    granted = [0] * clients
    while queue:
        t, c = heapq.heappop(queue)
        if t >= end:
            continue
        clock.t = t
        lease = core.lease(f"c{c}", 64, 64 * per_request, 64 * 10)
        granted[c] += lease.requests
        heapq.heappush(queue, (t + (lease.wait_s or 1e-3), c))
    clock.t = end
    return granted


@pytest.mark.parametrize("binding", ["rpm", "input_tpm"])
def test_sustained_demand_is_granted_at_the_target_rate(binding: str) -> None:
    clock = FakeClock()
    limits = AccountLimits(rpm=1200, input_tpm=2_000_000 if binding == "rpm" else 60_000)
    core = LimiterCore(limits, clock=clock)
    seconds = 300.0
    per_client = _simulate(core, clock, clients=5, seconds=seconds, per_request=100)
    target_per_s = 0.98 * (20.0 if binding == "rpm" else 1000 / 100)
    assert 0.95 * target_per_s * seconds <= sum(per_client) <= target_per_s * seconds + 1
    assert min(per_client) >= 0.9 * max(per_client)  # refused clients are served in turn
    stats = core.stats()
    assert stats["granted_requests"] / stats["leases"] <= max(1, 0.2 * target_per_s) + 1e-9


def test_leases_are_short_chunks_but_at_least_one_request() -> None:
    clock = FakeClock()
    core = LimiterCore(AccountLimits(rpm=6000, input_tpm=600, initial_burst_s=60), clock=clock)
    lease = core.lease("a", 1000, 0, 0)
    assert lease.requests == int(100 * 0.98 * 0.2)  # 0.2 s of 98 req/s
    assert core.lease("a", 1, 100, 0).requests == 1
    big = core.lease("a", 1, 5000, 0)  # one request over the whole input bucket: waits for a full one
    assert big.requests == 0
    assert big.wait_s == pytest.approx(100 / 9.8)
    clock.t += 60
    assert core.lease("a", 1, 5000, 0).requests == 1


def test_a_refused_client_that_never_returns_loses_its_place() -> None:
    clock = FakeClock()
    core = LimiterCore(AccountLimits(rpm=600), clock=clock)
    gone = core.lease("gone", 10, 0, 0)
    assert gone.requests == 0 and core.stats()["waiting_clients"] == 1
    clock.t += gone.wait_s
    assert core.lease("other", 10, 0, 0).requests == 0  # the chunk is held for "gone"
    clock.t += gone.wait_s + 1.5
    assert core.lease("other", 10, 0, 0).requests > 0


def test_settlement_corrects_token_estimates() -> None:
    clock = FakeClock()
    core = LimiterCore(AccountLimits(input_tpm=6000, output_tpm=60_000, initial_burst_s=60), clock=clock)
    assert core.lease("a", 1, 1000, 4000).requests == 1
    assert core.stats()["input_tokens_level"] == pytest.approx(5880 - 1000)
    # Over-estimated output: the unused part comes back at once.
    core.settle("a", Settlement(output_tokens_delta=-3000, completed=1))
    assert core.stats()["output_tokens_level"] == pytest.approx(58_800 - 1000)
    # Under-estimated input borrows against the future: the next grant waits for the debt.
    core.settle("a", Settlement(input_tokens_delta=+6880))
    assert core.stats()["input_tokens_level"] == pytest.approx(-2000)
    refused = core.lease("a", 1, 98, 0)
    assert refused.requests == 0
    assert refused.wait_s == pytest.approx((2000 + 98) / 98)
    clock.t += refused.wait_s
    assert core.lease("a", 1, 98, 0).requests == 1
    # A returned lease is capacity again.
    core.settle("a", Settlement(unused_input_tokens=98))
    assert core.stats()["input_tokens_level"] == pytest.approx(98)


def test_rate_limit_pauses_then_backs_off_and_recovers() -> None:
    clock = FakeClock()
    core = LimiterCore(AccountLimits(rpm=600, initial_burst_s=60), clock=clock)
    core.settle("a", Settlement(rate_limited=3, retry_after_s=4.0))
    stats = core.stats()
    assert stats["rate_factor"] == pytest.approx(0.7)
    assert stats["paused_s"] == pytest.approx(4.0)
    assert stats["requests_per_minute"] == pytest.approx(600 * 0.98 * 0.7)
    assert stats["requests_level"] <= 0
    assert core.lease("b", 1, 0, 0) == Lease(wait_s=pytest.approx(4.0))
    # More 429s from the same episode do not cut again.
    clock.t += 1
    core.settle("b", Settlement(rate_limited=1))
    assert core.stats()["rate_factor"] == pytest.approx(0.7)
    clock.t += 4  # the pause has passed; buckets refill at the reduced rate
    assert core.lease("b", 1, 0, 0).requests == 1
    clock.t += 5  # one clean interval after the pause: one additive step
    assert core.stats()["rate_factor"] == pytest.approx(0.75)
    clock.t += 5 * 5
    assert core.stats()["rate_factor"] == pytest.approx(1.0)
    # Repeated episodes cut multiplicatively down to the floor, never below.
    for _ in range(20):
        clock.t += 3  # apart enough to be new episodes, too close for a recovery step
        core.settle("a", Settlement(rate_limited=1, retry_after_s=0.5))
    assert core.stats()["rate_factor"] == pytest.approx(0.1)
    assert core.stats()["backoffs"] == 21
    assert core.stats()["rate_limited"] == 24


def test_rate_limit_without_retry_after_uses_the_default_pause() -> None:
    clock = FakeClock()
    core = LimiterCore(AccountLimits(rpm=600, default_retry_after_s=1.5), clock=clock)
    core.settle("a", Settlement(rate_limited=1))
    assert core.stats()["paused_s"] == pytest.approx(1.5)


def test_headers_only_ever_lower_the_level_and_the_limit() -> None:
    clock = FakeClock()
    core = LimiterCore(AccountLimits(rpm=600, input_tpm=None, initial_burst_s=60), clock=clock)
    core.settle("a", Settlement(headers=RateLimitInfo(remaining_requests=100)))
    assert core.stats()["requests_level"] == pytest.approx(98)
    core.settle("a", Settlement(headers=RateLimitInfo(remaining_requests=500)))  # never raises it
    assert core.stats()["requests_level"] == pytest.approx(98)
    core.settle("a", Settlement(headers=RateLimitInfo(limit_requests=300)))
    assert core.stats()["requests_per_minute"] == pytest.approx(300 * 0.98)
    core.settle("a", Settlement(headers=RateLimitInfo(limit_requests=900)))  # min(configured, reported)
    assert core.stats()["requests_per_minute"] == pytest.approx(300 * 0.98)
    # A limit we were not told of is adopted.
    core.settle("a", Settlement(headers=RateLimitInfo(limit_input_tokens=10_000, remaining_input_tokens=10)))
    stats = core.stats()
    assert stats["input_tokens_per_minute"] == pytest.approx(9800)
    assert stats["input_tokens_level"] <= 9.8


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="rpm"):
        AccountLimits(rpm=0)
    with pytest.raises(ValueError, match="margin"):
        AccountLimits(rpm=10, margin=1.5)
    with pytest.raises(ValueError, match="want"):
        LimiterCore(AccountLimits(rpm=10)).lease("a", 0, 0, 0)


# --- LeaseClient ---------------------------------------------------------------------------------


class FakeLimiter:
    """Records calls; `gate` holds fetches until the test opens it; `leases` scripts answers."""

    def __init__(self, leases: list[Lease]) -> None:
        self.leases = leases
        self.fetches: list[tuple[int, float, float, Settlement | None]] = []
        self.sent: list[Settlement] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def fetch(self, n: int, want_in: float, want_out: float, settlement: Settlement | None) -> Lease:
        self.fetches.append((n, want_in, want_out, settlement))
        await self.gate.wait()
        return self.leases.pop(0)

    async def send(self, settlement: Settlement) -> None:
        self.sent.append(settlement)


async def test_concurrent_acquires_share_one_fetch() -> None:
    limiter = FakeLimiter([Lease(requests=20, input_tokens=2000, output_tokens=1000, ttl_s=5)])
    limiter.gate.clear()
    client = LeaseClient(limiter.fetch, limiter.send, lease_requests=32)
    tasks = [asyncio.create_task(client.acquire(100, 50)) for _ in range(20)]
    await asyncio.sleep(0.01)
    assert len(limiter.fetches) == 1 and not any(t.done() for t in tasks)
    assert limiter.fetches[0][:3] == (32, 3200, 1600)
    limiter.gate.set()
    await asyncio.gather(*tasks)
    assert client.stats() == {"acquired": 20, "fetches": 1, "settlements_sent": 0, "lease_requests_left": 0}


async def test_refused_lease_sleeps_its_wait_and_returns_leftovers() -> None:
    clock = FakeClock()
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)
        clock.t += s

    limiter = FakeLimiter(
        [
            Lease(requests=3, input_tokens=30, output_tokens=30, ttl_s=2),
            Lease(wait_s=0.25),
            Lease(requests=1, input_tokens=500, output_tokens=10, ttl_s=2),
        ]
    )
    client = LeaseClient(limiter.fetch, limiter.send, clock=clock, sleep=sleep)
    await client.acquire(10, 10)
    await client.acquire(500, 10)  # too big for the lease: its remainder goes back on the next fetch
    assert slept == [0.25]
    assert limiter.fetches[1][3] == Settlement(
        unused_requests=2, unused_input_tokens=20, unused_output_tokens=20
    )
    assert limiter.fetches[1][1] >= 500 * limiter.fetches[1][0]  # a unit covers the big request
    assert limiter.fetches[2][3] is None


async def test_expired_lease_is_returned_not_spent() -> None:
    clock = FakeClock()
    limiter = FakeLimiter(
        [Lease(requests=5, input_tokens=50, ttl_s=2), Lease(requests=1, input_tokens=10, ttl_s=2)]
    )
    client = LeaseClient(limiter.fetch, limiter.send, clock=clock)
    await client.acquire(10, 0)
    clock.t += 2.5
    await client.acquire(10, 0)
    assert len(limiter.fetches) == 2
    assert limiter.fetches[1][3] == Settlement(unused_requests=4, unused_input_tokens=40)


async def test_settlements_are_batched_and_ride_on_fetches() -> None:
    limiter = FakeLimiter([Lease(requests=200, input_tokens=20_000, output_tokens=20_000, ttl_s=60)] * 2)
    client = LeaseClient(limiter.fetch, limiter.send, flush_interval_s=0.05)
    for _ in range(100):
        await client.acquire(100, 100)
        client.record_usage(100, 100, 90, 130)
    client.record_headers(RateLimitInfo(remaining_requests=50))
    client.record_headers(RateLimitInfo(remaining_requests=40, remaining_input_tokens=7))
    assert limiter.sent == []
    await asyncio.sleep(0.15)
    assert limiter.sent == [
        Settlement(
            input_tokens_delta=-1000,
            output_tokens_delta=3000,
            completed=100,
            headers=RateLimitInfo(remaining_requests=40, remaining_input_tokens=7),
        )
    ]
    # A pending correction rides on the next fetch instead of a call of its own.
    for _ in range(100):
        await client.acquire(100, 100)
    client.record_usage(100, 100, 100, 0)
    await client.acquire(100, 100)
    assert limiter.fetches[1][3] == Settlement(output_tokens_delta=-100, completed=1)
    await asyncio.sleep(0.15)
    assert len(limiter.sent) == 1
    await client.close()
    assert limiter.sent[-1] == Settlement(
        unused_requests=199, unused_input_tokens=19_900, unused_output_tokens=19_900
    )
    with pytest.raises(RuntimeError, match="close"):
        await client.acquire(1, 1)


async def test_rate_limited_pauses_local_acquires() -> None:
    clock = FakeClock()
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)
        clock.t += s

    limiter = FakeLimiter([Lease(requests=10, input_tokens=100, ttl_s=60)])
    client = LeaseClient(limiter.fetch, limiter.send, clock=clock, sleep=sleep, flush_interval_s=100)
    await client.acquire(10, 0)
    client.record_rate_limited(3.0)
    client.record_rate_limited(1.0)
    await client.acquire(10, 0)
    assert slept == [3.0] and len(limiter.fetches) == 1
    await client.close()
    assert limiter.sent[-1].rate_limited == 2 and limiter.sent[-1].retry_after_s == 3.0


# --- LimiterActor across processes ---------------------------------------------------------------


def test_actor_shares_one_account_across_processes(ray_local: None) -> None:
    """Three client processes draw on one named limiter: the account's rate, shared fairly."""

    @ray.remote(num_cpus=1)
    class Hammer:
        """A client actor that acquires as fast as it can, from many coroutines."""

        def ready(self) -> bool:
            return True

        async def run(self, limiter, name: str, deadline: float) -> dict:
            client = lease_client_for(limiter, name)
            count = 0

            async def worker() -> None:
                nonlocal count
                while time.time() < deadline:
                    await client.acquire(100, 20)
                    if time.time() < deadline:
                        count += 1
                    client.record_usage(100, 20, 100, random.randint(0, 40))

            await asyncio.gather(*(worker() for _ in range(8)))
            await client.close()
            return {"count": count, **client.stats()}

    hammers = [Hammer.remote() for _ in range(3)]
    ray.get([h.ready.remote() for h in hammers])
    account = f"test-{os.getpid()}-{time.time_ns()}"
    limits = AccountLimits(rpm=1200, output_tpm=120_000)
    t0 = time.time()  # the buckets start (empty) after this: the upper bound counts from here
    limiter = get_limiter(account, limits)
    assert get_limiter(account, limits)._actor_id == limiter._actor_id  # one actor per account
    ray.get(limiter.stats.remote())
    t_ready = time.time()  # and before this: the lower bound counts from here
    deadline = t_ready + 6.0
    results = ray.get([h.run.remote(limiter, f"h{i}", deadline) for i, h in enumerate(hammers)])
    total = sum(r["count"] for r in results)
    rate = 1200 / 60 * 0.98
    assert 0.9 * rate * (deadline - t_ready) <= total <= rate * (deadline - t0) + 1, (
        total,
        t_ready - t0,
        results,
    )
    assert all(r["count"] > 0.2 * total for r in results), results  # every process got a fair share
    stats = ray.get(limiter.stats.remote())
    assert stats["rate_limited"] == 0 and stats["granted_requests"] >= total
    assert stats["completed"] >= total  # every usage record arrived, batched
    assert all(r["settlements_sent"] <= 6.0 / 0.5 + 2 for r in results), results
    ray.kill(limiter)
