"""The state behind the emulator's batch APIs: every batch, and how its items finish with time.

A batch's items finish one after another, evenly over `BatchBehaviour.delay_s` from its
creation, so polling mid-way shows progress and a cancel keeps what already finished.
Time is applied lazily: every batch call advances every batch to the present.
Each finished item draws (seeded by its request hash) whether it fails with a 500; items
still unfinished `expire_s` after creation expire. A finished item's answer is the one the
online endpoint would give for the same body, and counts in `ok_by_hash` under the online
request's hash, so tests prove exactly-once across both paths. `batch_by_hash` counts how
often each request was submitted in a batch.
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from actors.emulator.config import EmulatorConfig
from actors.emulator.dialects.base import JSON, ChatInput, ChatOutput, Dialect, WireError
from actors.emulator.faults import uniform
from actors.emulator.stats import Stats, request_hash

Outcome = Literal["answered", "expired", "canceled"]
Answer = Callable[[ChatInput, str, str, Dialect], ChatOutput]
"""The online answer to a chat request: (request, key fingerprint, request hash, dialect)."""


@dataclass
class EmuItem:
    custom_id: str
    path: str
    """The online endpoint's path: with the body, it gives the request hash."""
    body: JSON
    done_at: float
    outcome: Outcome | None = None
    status: int = 0
    answer: JSON | None = None


@dataclass
class EmuBatch:
    id: str
    provider: str
    fp: str
    dialect: Dialect
    model: str | None
    created: float
    items: list[EmuItem]
    expires_at: float
    """When unfinished items expire (`BatchBehaviour.expire_s` after creation)."""
    tag: str = ""
    input_file_id: str | None = None
    cancelled_at: float | None = None
    """When a cancel was asked for (before the batch ended); None if never."""
    ended_at: float | None = None
    files: dict[str, str] = field(default_factory=dict)

    @property
    def cancelled(self) -> bool:
        return self.cancelled_at is not None

    def counts(self) -> dict[str, int]:
        out = {"succeeded": 0, "errored": 0, "expired": 0, "canceled": 0, "processing": 0}
        for item in self.items:
            if item.outcome is None:
                out["processing"] += 1
            elif item.outcome == "answered":
                out["succeeded" if item.status == 200 else "errored"] += 1
            else:
                out[item.outcome] += 1
        return out

    @property
    def expired(self) -> bool:
        return any(i.outcome == "expired" for i in self.items)


class BatchDesk:
    """Every batch the emulator holds, and how it advances with the clock."""

    def __init__(
        self,
        config: EmulatorConfig,
        stats: Stats,
        answer: Answer,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Args:
        config: the emulator's config; its `batch` behaviour and `seed` apply.
        stats: where submissions and answers are counted, shared with the online path.
        answer: the online pipeline's answer, so a batch item is answered as its online call.
        clock: monotonic seconds; tests may pass their own.
        """
        self.config = config
        self.stats = stats
        self.answer = answer
        self.clock = clock
        self.batches: dict[str, EmuBatch] = {}
        self.files: dict[str, bytes] = {}
        self._ids = itertools.count(1)

    def new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):06d}{secrets.token_hex(4)}"

    def create(
        self,
        provider: str,
        fp: str,
        dialect: Dialect,
        model: str | None,
        items: list[tuple[str, str, JSON]],
        prefix: str,
        **extra: Any,
    ) -> EmuBatch:
        now, delay = self.clock(), self.config.batch.delay_s
        n = max(len(items), 1)
        batch = EmuBatch(
            id=self.new_id(prefix),
            provider=provider,
            fp=fp,
            dialect=dialect,
            model=model,
            created=now,
            expires_at=now + self.config.batch.expire_s,
            items=[
                EmuItem(cid, path, body, now + delay * (i + 1) / n)
                for i, (cid, path, body) in enumerate(items)
            ],
            **extra,
        )
        self.batches[batch.id] = batch
        self.stats.batches += 1
        for item in batch.items:
            self.stats.batch_by_hash[request_hash(item.path, item.body)] += 1
        return batch

    def get(self, batch_id: str, fp: str) -> EmuBatch | None:
        batch = self.batches.get(batch_id)
        return batch if batch is not None and batch.fp == fp else None

    def advance(self, batch: EmuBatch) -> None:
        """Finish the items whose time has come; expire or cancel the rest when the batch ends."""
        if batch.ended_at is not None:
            return
        now = self.clock()
        for item in batch.items:
            if item.outcome is None and item.done_at <= min(now, batch.expires_at):
                self._finish(batch, item)
        if all(i.outcome is not None for i in batch.items):
            batch.ended_at = now
        elif batch.cancelled or now >= batch.expires_at:
            for item in batch.items:
                if item.outcome is None:
                    item.outcome = "canceled" if batch.cancelled else "expired"
            batch.ended_at = now

    def advance_all(self) -> None:
        """Advance every batch: a provider works on batches whether anyone polls them or not."""
        for batch in self.batches.values():
            self.advance(batch)

    def cancel(self, batch: EmuBatch) -> None:
        self.advance(batch)
        if batch.ended_at is None:
            batch.cancelled_at = self.clock()

    def wall_s(self, monotonic_s: float) -> float:
        """A time on the desk's clock as Unix seconds, for the times a batch object shows."""
        return time.time() - (self.clock() - monotonic_s)

    def iso(self, monotonic_s: float | None) -> str | None:
        """A time on the desk's clock as RFC 3339 UTC, or None."""
        if monotonic_s is None:
            return None
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(self.wall_s(monotonic_s))) + "Z"

    def _finish(self, batch: EmuBatch, item: EmuItem) -> None:
        dialect, rhash = batch.dialect, request_hash(item.path, item.body)
        item.outcome = "answered"
        try:
            parsed = dialect.parse_chat(item.body, batch.model)
        except (WireError, ValueError, KeyError, TypeError) as exc:
            item.status, item.answer = dialect.error("invalid", f"Invalid request: {exc}")
            return
        seen = self.stats.batch_by_hash[rhash]
        if uniform(self.config.seed, "batch:" + rhash, seen) < self.config.batch.failure_rate:
            item.status, item.answer = dialect.error(
                "server", "The server had an error processing this request."
            )
            return
        assert isinstance(parsed, ChatInput)
        out = self.answer(parsed, batch.fp, rhash, dialect)
        item.status, item.answer = 200, dialect.chat_body(parsed.request.model_id, out)
        self.stats.ok_by_hash[rhash] += 1
