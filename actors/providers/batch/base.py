"""The batch-API contract: submit many online request bodies at once, poll, read the results.

A batch item's body is exactly the body of the online call (built by the online adapter),
and a batch item's answer is parsed by the same online parser, so a call's key, stored row
and parsed answer do not depend on the path it took. Each provider module only describes
how items are wrapped, how a batch's state reads, and where its results are.
"""

from __future__ import annotations

import asyncio
import json
import random
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import aiohttp

from actors.errors import ProviderError
from actors.providers.base import raw_text, response_error
from actors.retry import RetryPolicy
from actors.types import Endpoint

BatchPhase = Literal["in_progress", "cancelling", "ended"]
"""A batch's state in neutral form; only an ended batch has results to read."""

ItemOutcome = Literal["answered", "expired", "canceled"]
"""`answered` carries an HTTP status and body (2xx or an error); the others never ran."""


@dataclass(frozen=True)
class BatchLimits:
    """What one provider accepts: requests and bytes per batch, batches open at once."""

    max_requests: int
    max_bytes: int
    max_in_flight: int


@dataclass(frozen=True)
class BatchItem:
    """One request of a batch: its call key (the custom id) and the online request body."""

    key: str
    body: dict[str, Any]


@dataclass(frozen=True)
class RemoteBatch:
    """A provider's view of one batch, read by `poll`."""

    remote_id: str
    phase: BatchPhase
    provider_status: str
    counts: dict[str, int] = field(default_factory=dict)
    """Item counts in the provider's own names (e.g. completed/failed, succeeded/errored)."""
    ref: dict[str, Any] = field(default_factory=dict)
    """Where the results are: output/error file ids, a results URL, or inline responses."""


@dataclass(frozen=True)
class ItemResult:
    """One item of an ended batch."""

    key: str
    outcome: ItemOutcome
    status: int = 0
    """HTTP status of an answered item (200 for a usable answer)."""
    body: bytes = b""
    """The answer's body, or the error's body, as the online endpoint would have sent it."""


BATCH_POLICY = RetryPolicy(max_attempts=5, base_s=2.0, max_s=30.0)
"""Control calls' default: five tries, waits jittered up to 2, 4, 8 and 16 s (the engine's
online policy is tuned for many calls at once; a control call is one of a few per batch)."""


class BatchHttp:
    """An aiohttp session with one model's auth headers; control calls, retried when transient.

    Retries follow a `RetryPolicy`, the client actor's own (jitter, cap, retry-after as a
    floor, the same error classes). Creating a batch is not idempotent, so `retry=False`
    there: a timeout or a dropped connection leaves it unknown whether the provider made
    the batch (see jobs/batching).
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        headers: Mapping[str, str],
        *,
        policy: RetryPolicy = BATCH_POLICY,
        rng: random.Random | None = None,
    ) -> None:
        """Args:
        session: owned by the caller, who closes it.
        headers: the model's request headers with its auth headers.
        policy: how often and how long to retry a transient failure.
        rng: draws the backoff jitter; pass a seeded one for a repeatable schedule.
        """
        self._session = session
        self._headers = dict(headers)
        self._policy = policy
        self._rng = rng or random.Random()

    async def request(
        self,
        method: str,
        url: str,
        *,
        json_body: Any = None,
        data: Any = None,
        retry: bool = True,
        timeout_s: float = 300.0,
    ) -> bytes:
        """The 2xx body of one control call. Raises `ProviderError` (classified) otherwise."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._once(method, url, json_body, data, timeout_s)
            except ProviderError as err:
                if not retry or self._policy.gives_up(err, attempt):
                    raise
                await asyncio.sleep(self._policy.backoff_s(attempt, err.retry_after_s, self._rng))

    async def _once(self, method: str, url: str, json_body: Any, data: Any, timeout_s: float) -> bytes:
        try:
            async with self._session.request(
                method,
                url,
                json=json_body,
                data=data,
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=timeout_s),
            ) as resp:
                body = await resp.read()
                status, resp_headers = resp.status, resp.headers
        except TimeoutError as exc:
            raise ProviderError("timeout", f"{method} {_path(url)}: no answer within {timeout_s}s") from exc
        except aiohttp.ClientError as exc:
            raise ProviderError("connection", f"{method} {_path(url)}: {type(exc).__name__}") from exc
        if not 200 <= status < 300:
            raise response_error(status, resp_headers, body, f"{method} {_path(url)}")
        return body


def _path(url: str) -> str:
    """The URL without scheme and host, for messages (hosts are config, not secrets, but noisy)."""
    rest = url.split("://", 1)[-1]
    return "/" + rest.split("/", 1)[-1] if "/" in rest else url


def parse_json(body: bytes, what: str) -> dict[str, Any]:
    """A JSON object from a control call, or a `ProviderError` of kind malformed naming `what`."""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise ProviderError("malformed", f"{what}: the body is not a JSON object", raw=raw_text(body))
    return data


def int_counts(counts: Any) -> dict[str, int]:
    """A provider's item counts as ints (Gemini sends int64 as strings); {} when absent."""
    return {str(k): int(v) for k, v in counts.items()} if isinstance(counts, dict) else {}


def jsonl(body: bytes) -> list[dict[str, Any]]:
    """The objects of a JSON Lines body; blank lines are skipped."""
    rows = []
    for n, line in enumerate(body.splitlines(), 1):
        if line.strip():
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ProviderError("malformed", f"results line {n} is not a JSON object")
            rows.append(row)
    return rows


class BatchAPI(ABC):
    """One provider's batch endpoints. Stateless: the caller owns the session and the records."""

    provider: ClassVar[str]
    limits: ClassVar[BatchLimits]
    """The provider's documented limits; config may lower them."""

    def item_bytes(self, item: BatchItem) -> int:
        """Bytes the item adds to the payload (its JSON line), for the per-batch byte limit."""
        return len(json.dumps(self.wrap(item), separators=(",", ":")).encode()) + 1

    @abstractmethod
    def wrap(self, item: BatchItem) -> dict[str, Any]:
        """The item as this provider's batch input wants it."""

    @abstractmethod
    async def submit(self, http: BatchHttp, ep: Endpoint, items: list[BatchItem], tag: str) -> str:
        """Create a batch of `items`; returns the provider's batch id. `tag` names it for people."""

    @abstractmethod
    async def poll(self, http: BatchHttp, ep: Endpoint, remote_id: str) -> RemoteBatch:
        """The batch's current state."""

    @abstractmethod
    async def results(self, http: BatchHttp, ep: Endpoint, batch: RemoteBatch) -> list[ItemResult]:
        """Every item result of an ended batch that the provider reports."""

    async def find(self, http: BatchHttp, ep: Endpoint, tag: str) -> str | None:
        """The id of a batch created with `tag`, or None.

        Used for a create call that a kill cut off. The default finds nothing: Anthropic's
        batches carry no name or metadata to match.
        """
        return None

    @abstractmethod
    async def cancel(self, http: BatchHttp, ep: Endpoint, remote_id: str) -> None:
        """Ask the provider to stop the batch; finished items stay readable once it ends."""
