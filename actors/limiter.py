"""The per-account limiter as a named Ray actor, shared by every client in the cluster.

The arithmetic lives in `limiter_core` (Ray-free, on a fake clock in tests) and the client
side in `lease_client`; this module wires them to Ray and re-exports the public names.
"""

from __future__ import annotations

import time
from typing import Any

import ray

from actors.lease_client import LeaseClient, lease_client_for
from actors.limiter_core import AccountLimits, Lease, LimiterCore, Settlement
from actors.metrics import LimiterMetrics

__all__ = [
    "NAMESPACE",
    "AccountLimits",
    "Lease",
    "LeaseClient",
    "LimiterActor",
    "LimiterCore",
    "Settlement",
    "find_limiter",
    "get_limiter",
    "kill_limiter",
    "lease_client_for",
    "limiter_name",
]

NAMESPACE = "specstress"
"""Ray namespace of the named limiter actors, so drivers and clients anywhere find them."""


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class LimiterActor:
    """The shared limiter of one account, a named async actor on the cluster.

    A restart starts from empty buckets (see `limiter_core`), so it cannot cause a burst.
    """

    def __init__(self, account: str, limits: AccountLimits) -> None:
        self._account = account
        self._core = LimiterCore(limits)
        self._metrics = LimiterMetrics(account)

    async def lease(
        self,
        client_id: str,
        want_requests: int,
        want_input_tokens: float,
        want_output_tokens: float,
        settlement: Settlement | None = None,
    ) -> Lease:
        """Apply a piggy-backed settlement, then grant a lease (see `LimiterCore.lease`)."""
        if settlement is not None and not settlement.empty:
            self._core.settle(client_id, settlement)
        lease = self._core.lease(client_id, want_requests, want_input_tokens, want_output_tokens)
        stats = self._core.stats()
        self._metrics.report(stats["rate_factor"], stats["waiting_clients"])
        return lease

    async def settle(self, client_id: str, settlement: Settlement) -> None:
        self._core.settle(client_id, settlement)

    async def stats(self) -> dict[str, Any]:
        return {"account": self._account, **self._core.stats()}


def limiter_name(account: str) -> str:
    """The Ray actor name of an account's limiter."""
    return f"limiter:{account}"


def get_limiter(account: str, limits: AccountLimits, *, detached: bool = False) -> Any:
    """Get or create the named limiter actor of `account`, shared by every client in the cluster.

    The first caller's `limits` win; later callers get the existing actor. The driver
    should call this before starting clients so it owns the actor (a non-detached actor
    dies with its owner); `detached=True` keeps it past the driver, e.g. for a shared
    cluster where several runs draw on one account.
    """
    return LimiterActor.options(
        name=limiter_name(account),
        namespace=NAMESPACE,
        get_if_exists=True,
        lifetime="detached" if detached else None,
    ).remote(account, limits)


def find_limiter(account: str) -> Any:
    """The running limiter of `account`, by name (created by the driver with `get_limiter`)."""
    return ray.get_actor(limiter_name(account), namespace=NAMESPACE)


def kill_limiter(account: str, handle: Any, *, timeout_s: float = 30.0) -> None:
    """Kill the limiter of `account` and wait until its name is free.

    A limiter dies with its last handle, asynchronously; a new run in the same process
    could otherwise be handed the dying actor by `get_limiter` (and its old limits). Killing
    it at the end of a run, and waiting, makes the next `get_limiter` start a fresh one.
    """
    ray.kill(handle, no_restart=True)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            ray.get_actor(limiter_name(account), namespace=NAMESPACE)
        except ValueError:
            return
        time.sleep(0.05)
