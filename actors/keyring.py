"""API keys held in memory only: a key ring actor that the driver fills and client actors ask.

Keys never travel in a Ray runtime environment (which Ray logs, and keeps in its control
store) or in an actor's creation arguments (which Ray keeps, to restart the actor). The
driver reads them from its own environment and puts them in the ring with a method call; a
client asks the ring for a key the first time it needs it, and a restarted client, which
has lost what it held, asks again.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from actors.limiter import NAMESPACE


@ray.remote(num_cpus=0, max_restarts=0)
class KeyRing:
    """Key values by environment variable name, in this actor's memory."""

    def __init__(self) -> None:
        self._keys: dict[str, str] = {}

    def put(self, keys: dict[str, str]) -> None:
        self._keys.update(keys)

    def get(self, name: str) -> str | None:
        return self._keys.get(name)


def open_key_ring(keys: Mapping[str, str]) -> tuple[str, Any]:
    """Create a ring on this node, owned by the caller (the driver), holding `keys`; (its name, handle).

    On the driver's node, so losing a worker node never loses the ring; the name is unique,
    so runs sharing a cluster never read each other's keys.
    """
    name = f"keys-{uuid.uuid4().hex}"
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    ring = KeyRing.options(name=name, namespace=NAMESPACE, scheduling_strategy=here).remote()
    ray.get(ring.put.remote(dict(keys)))
    return name, ring


async def fetch_key(ring_name: str, variable: str) -> str | None:
    """The key the driver holds for `variable`, or None when it has none."""
    ring = ray.get_actor(ring_name, namespace=NAMESPACE)
    return await ring.get.remote(variable)
