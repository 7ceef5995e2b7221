"""The client actors and limiters of one run, created by the driver so it owns them."""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import os
import threading
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from actors.client import ClientActor, ClientSettings
from actors.driver_lease import DRIVER_LEASE_S, RENEW_EVERY_S
from actors.keyring import open_key_ring
from actors.limiter import get_limiter, kill_limiter
from actors.retry import RetryPolicy
from actors.types import Endpoint
from actors.wal import WalSettings
from jobs.conf.loader import account_limits, to_account_limits
from jobs.conf.schema import RunConf

log = logging.getLogger("specstress.engine")

SEAL_TIMEOUT_S = 30.0
"""How long the driver waits for clients to seal their logs; a hung client's segment waits for the session's end."""


def client_placements(n: int) -> list[Any]:
    """Scheduling strategies that put `n` clients round-robin on the live nodes with CPUs.

    Losing a node then loses only its share of the calls in flight. Soft affinity: a client
    whose node dies restarts wherever Ray finds room. (Ray's "SPREAD" is best effort and
    left two of three clients on one node in our three-node test.)
    """
    nodes = sorted(node["NodeID"] for node in ray.nodes() if node["Alive"] and node["Resources"].get("CPU"))
    if len(nodes) < 2:
        return [None] * n
    return [NodeAffinitySchedulingStrategy(nodes[i % len(nodes)], soft=True) for i in range(n)]


class ClientPool:
    """Client actor handles, handed out round-robin, and the limiters they lease from.

    While the pool is open a thread renews every client's driver lease (`actors/driver_lease.py`):
    a thread, not the engine's event loop, which may be busy for seconds writing Parquet. When
    this process dies the thread dies with it, and the clients pause their new calls.
    """

    def __init__(self) -> None:
        self.handles: list[Any] = []
        self._limiters: dict[str, Any] = {}
        self._ring: Any = None
        self._rr = itertools.count()
        self._renewer: threading.Thread | None = None
        self._stop_renewing = threading.Event()

    def start(self, conf: RunConf, endpoints: dict[str, Endpoint], run_id: str, wal: WalSettings) -> None:
        """Create the limiters, then `engine.num_clients` clients logging to `wal`; a started pool stays as it is."""
        if self.handles:
            return
        n = conf.engine.num_clients
        limits = account_limits(conf)
        # Created here, so the driver owns them (and holds their handles: a non-detached actor
        # dies with its last handle); clients find them by name.
        self._limiters = {
            acc: get_limiter(acc, to_account_limits(lim, conf.engine.lease_margin))
            for acc, lim in limits.items()
        }
        # The keys go from this process's environment to the clients by method calls only.
        variables = {ep.api_key_env for ep in endpoints.values() if ep.api_key_env}
        ring_name, self._ring = open_key_ring({v: os.environ[v] for v in variables if os.environ.get(v)})
        settings = ClientSettings(
            endpoints=endpoints,
            wal=wal,
            in_flight={acc: max(1, math.ceil(lim.max_in_flight / n)) for acc, lim in limits.items()},
            policy=RetryPolicy(
                max_attempts=conf.engine.max_attempts,
                base_s=conf.engine.backoff_base_s,
                max_s=conf.engine.backoff_max_s,
            ),
            run_id=run_id,
            key_ring=ring_name,
        )
        self.handles = [
            ClientActor.options(scheduling_strategy=where).remote(settings, seed=conf.seed + i)
            for i, where in enumerate(client_placements(n))
        ]
        self._stop_renewing.clear()
        self._renewer = threading.Thread(target=self._renew, name="driver-lease", daemon=True)
        self._renewer.start()

    def _renew(self) -> None:
        """Renew each client's driver lease every `RENEW_EVERY_S` until `stop_renewing`."""
        handles = list(self.handles)
        while not self._stop_renewing.wait(RENEW_EVERY_S):
            for client in handles:
                # Fire and forget: a dead or restarting client misses a renewal, and a restarted
                # one starts with a lease of its own.
                client.renew.remote(DRIVER_LEASE_S)

    def stop_renewing(self) -> None:
        """Stop renewing the clients' driver leases and wait for the thread: they pause within a lease."""
        self._stop_renewing.set()
        if self._renewer is not None:
            self._renewer.join()
            self._renewer = None

    def next(self) -> Any:
        """The next client in turn: a batch sent again after a lost client goes to another one."""
        return self.handles[next(self._rr) % len(self.handles)]

    def seal(self) -> None:
        """Have every client close its log's open segment, so the store can have all answers now."""
        refs = [c.seal.remote() for c in self.handles]
        ready, hung = ray.wait(refs, num_returns=len(refs), timeout=SEAL_TIMEOUT_S)
        for ref in ready:
            with contextlib.suppress(ray.exceptions.RayActorError):
                ray.get(ref)  # a lost client's open segment is settled when the session ends
        if hung:
            log.warning("%d client(s) did not seal their logs within %.0f s", len(hung), SEAL_TIMEOUT_S)

    def drain(self, timeout_s: float) -> None:
        """Tell every client to send nothing new and cut calls on the wire off after `timeout_s`."""
        for client in self.handles:
            client.drain.remote(timeout_s)

    def close(self) -> None:
        """Close the clients' sessions, end the clients and the limiters."""
        self.stop_renewing()
        if self.handles:
            ray.get([c.close.remote() for c in self.handles])
            for c in self.handles:
                ray.kill(c)
            self.handles = []
        for account, handle in self._limiters.items():
            kill_limiter(account, handle)
        self._limiters = {}
        if self._ring is not None:
            ray.kill(self._ring)
            self._ring = None
