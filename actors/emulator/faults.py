"""Which fault, if any, a request gets: a pure function of the seed, the request and its retry.

The draw hashes (seed, request hash, times that request was seen before), so a run is
reproducible and a retry of a failed request draws again and usually succeeds, as it
would against a flaky provider.
"""

from __future__ import annotations

import hashlib
from typing import Literal

from actors.emulator.config import FaultRates

Fault = Literal["server_500", "overloaded_529", "hang", "reset", "malformed_json", "truncated_body"]
FAULTS: tuple[Fault, ...] = (
    "server_500",
    "overloaded_529",
    "hang",
    "reset",
    "malformed_json",
    "truncated_body",
)


def uniform(seed: int, request_hash: str, attempt: int) -> float:
    """A deterministic draw in [0, 1) for one attempt of one request."""
    digest = hashlib.blake2b(f"{seed}:{request_hash}:{attempt}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def choose_fault(rates: FaultRates, seed: int, request_hash: str, attempt: int) -> Fault | None:
    """The fault for attempt `attempt` (0 = first) of a request, or None for a clean answer."""
    probabilities = rates.as_dict()
    if not any(probabilities.values()):
        return None
    u = uniform(seed, request_hash, attempt)
    edge = 0.0
    for fault in FAULTS:
        edge += probabilities[fault]
        if u < edge:
            return fault
    return None


def malform(body: bytes) -> bytes:
    """A body that looks like JSON but does not parse: a stray quote and brace in the middle."""
    middle = len(body) // 2
    return body[:middle] + b'"}{,' + body[middle:]


def truncate(body: bytes) -> bytes:
    """The first half of a body, as when a connection drops mid-answer behind a proxy."""
    return body[: len(body) // 2]
