"""Counters of what the emulator saw, for tests and benchmarks; keys appear only as fingerprint labels."""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any

from actors.emulator.config import fingerprint_label
from actors.types import canonical_json


def request_hash(path: str, body: Any) -> str:
    """sha256 of the path and the canonical JSON body: equal requests hash equally.

    The key the counters below are kept under, online and batch alike.
    """
    return hashlib.sha256(f"{path}\n{canonical_json(body)}".encode()).hexdigest()


class Stats:
    """Requests per key label and per request hash, answers per status, injected faults."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.total = 0
        self.by_key: Counter[str] = Counter()
        self.by_hash: Counter[str] = Counter()
        self.ok_by_hash: Counter[str] = Counter()
        """Well-formed answers (HTTP 200, body intact) per request hash: what exactly-once is proved on."""
        self.batches = 0
        self.batch_by_hash: Counter[str] = Counter()
        """Times each request (by its online request hash) was submitted inside a batch."""
        self.status: Counter[str] = Counter()
        self.admitted_at: list[float] = []
        """Wall-clock times (Unix s) of requests admitted past the rate limit, for rate tests."""
        self.faults: Counter[str] = Counter()

    def record_request(self, fp: str, request_hash: str) -> int:
        """Count a request; returns how many times the same request was seen before (its attempt)."""
        self.by_key[fingerprint_label(fp)] += 1
        attempt = self.by_hash[request_hash]
        self.by_hash[request_hash] = attempt + 1
        return attempt

    def snapshot(self) -> dict[str, Any]:
        """The /_stats JSON."""
        return {
            "total": self.total,
            "rate_limited": self.status["429"],
            "status": dict(self.status),
            "by_key": dict(self.by_key),
            "by_hash": dict(self.by_hash),
            "ok_by_hash": dict(self.ok_by_hash),
            "faults": dict(self.faults),
            "batches": self.batches,
            "batch_by_hash": dict(self.batch_by_hash),
        }
