"""The client actor: one aiohttp session, a bounded number of requests in flight, the only retry loop.

The driver hands it batches of (key, spec JSON); it answers each batch with one Arrow
record batch in the store schema. Every request ends as exactly one row, `ok` or `failed`
with its reason and attempt count: no request vanishes, whatever the provider does. Each
send is logged before it goes out and each row is durable in the client's write-ahead log
(`actors/wal.py`) before the batch returns, so a kill of the driver loses no answer in hand.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

import aiohttp
import pyarrow as pa
import ray

from actors.driver_lease import DRIVER_LEASE_S, DriverLease
from actors.errors import ProviderError
from actors.keyring import fetch_key
from actors.lease_client import LeaseClient, lease_client_for
from actors.limiter import find_limiter
from actors.metrics import CallMetrics
from actors.providers.base import get_adapter
from actors.retry import RetryPolicy
from actors.store import STORE_SCHEMA
from actors.tokens import DEFAULT_OUTPUT_TOKENS, estimate_input_tokens, output_cap
from actors.types import CallSpec, Endpoint, ParsedResponse, spec_from_json
from actors.wal import WalSettings, WalWriter

UNSENT = "unsent"
"""Status of a row a draining client never sent: not paid, not stored, sent again on resume."""
ABANDONED = "abandoned"
"""Status of a row whose HTTP call a draining client cut off at its deadline: perhaps paid,
not stored; its send is in the log without an answer, so the run counts it as perhaps paid twice."""


@dataclass(frozen=True)
class ClientSettings:
    """The slice of config one client actor needs: plain, small data.

    No actor handles or object refs: Ray inlines small plain arguments into the actor's
    creation task, so a restart on another node always has them (an argument held in the
    object store may be gone by then: ray-project/ray#53727). Clients find the limiters
    by name instead.
    """

    endpoints: dict[str, Endpoint]
    wal: WalSettings
    in_flight: dict[str, int]
    """This client's share of each account's max_in_flight."""
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    run_id: str = ""
    key_ring: str = ""
    """Name of the run's key ring (`actors/keyring.py`): the client asks it for each API key."""


def base_row(key: str, ep: Endpoint, kind: str, run_id: str) -> dict[str, Any]:
    """The identifying fields of a store row, before the call's outcome is known."""
    return {
        "key": key,
        "model": ep.model_key,
        "provider": ep.provider,
        "model_id": ep.model_id,
        "kind": kind,
        "run_id": run_id,
        "attempts": 0,
        "rate_limited": 0,
    }


def ok_row(
    row: dict[str, Any], ep: Endpoint, p: ParsedResponse, latency_s: float, *, batch: bool = False
) -> dict[str, Any]:
    """Complete `row` with a usable answer, priced at the online or (`batch`) the batch price."""
    row.update(
        status="ok",
        text=p.text,
        thinking=p.thinking or None,
        finish_reason=p.finish_reason,
        refusal=p.refusal,
        flag=p.flag,
        input_tokens=p.input_tokens,
        output_tokens=p.output_tokens,
        cached_input_tokens=p.cached_input_tokens,
        cache_write_tokens=p.cache_write_tokens,
        reasoning_tokens=p.reasoning_tokens,
        cost_usd=ep.prices.cost_usd(
            p.input_tokens, p.output_tokens, p.cached_input_tokens, p.cache_write_tokens, batch=batch
        ),
        latency_s=latency_s,
        embeddings=[list(v) for v in p.embeddings] if p.embeddings is not None else None,
        finished_at=datetime.now(UTC),
    )
    return row


def failed_row(row: dict[str, Any], err: ProviderError) -> dict[str, Any]:
    """Complete `row` as a failure with its reason; failures cost nothing."""
    row.update(
        status="failed",
        error_kind=err.kind,
        error=str(err),
        raw=err.raw,
        cost_usd=0.0,
        finished_at=datetime.now(UTC),
    )
    return row


class ClientCore:
    """The Ray-free body of a client: used by `ClientActor` and directly by tests."""

    def __init__(
        self,
        settings: ClientSettings,
        limiter_for: Callable[[str], Any],
        key_for: Callable[[str], Awaitable[str | None]],
        *,
        seed: int | None = None,
        metrics: CallMetrics | None = None,
        driver_lease_s: float = DRIVER_LEASE_S,
    ) -> None:
        """Args:
        settings: this client's slice of config.
        limiter_for: the limiter (actor handle) of an account, looked up on first use.
        key_for: the API key held for an environment variable name, asked on first use.
        seed: seeds the backoff jitter.
        metrics: where counters and gauges go (default: Ray's metrics API).
        driver_lease_s: seconds the first driver lease runs (`actors/driver_lease.py`).
        """
        self.settings = settings
        self._limiter_for = limiter_for
        self._key_for = key_for
        self._metrics = metrics or CallMetrics()
        self._rng = random.Random(seed)
        self._session: aiohttp.ClientSession | None = None
        self._leases: dict[str, LeaseClient] = {}
        self._sems = {acc: asyncio.Semaphore(max(n, 1)) for acc, n in settings.in_flight.items()}
        self._out_mean: dict[str, float] = {}
        self._keys: dict[str, str | None] = {}
        self._client_id = f"client-{uuid.uuid4().hex[:8]}"
        self._draining = False
        self._sending: set[asyncio.Future[Any]] = set()
        self._wal = WalWriter(settings.wal, self._client_id)
        self._driver_lease = DriverLease(driver_lease_s)

    def _lease(self, account: str) -> LeaseClient:
        if account not in self._leases:
            self._leases[account] = lease_client_for(self._limiter_for(account), self._client_id)
        return self._leases[account]

    async def _api_key(self, ep: Endpoint) -> str | None:
        # Held in this process's memory only; a restarted client asks again.
        if ep.api_key_env is None:
            return None
        if ep.api_key_env not in self._keys:
            self._keys[ep.api_key_env] = await self._key_for(ep.api_key_env) or None
        return self._keys[ep.api_key_env]

    async def call_batch(self, items: list[tuple[str, str]], stage: str) -> pa.RecordBatch:
        """Answer every (key, spec JSON) pair of `stage`; the batch holds exactly one row per item,
        and every `ok` or `failed` row is in the write-ahead log before it returns."""
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(connector=connector)
        rows = await asyncio.gather(*(self._call(key, spec_from_json(js), stage) for key, js in items))
        return pa.RecordBatch.from_pylist(rows, schema=STORE_SCHEMA)

    def seal(self) -> None:
        """Close the log's open segment, so the driver can move its rows to the store now."""
        self._wal.seal()

    def drain(self, timeout_s: float) -> None:
        """Send nothing new, and cut off calls still on the wire after `timeout_s`.

        Requests not yet sent come back as `unsent` rows, calls cut off as `abandoned` rows;
        neither is stored. Batches return with everything that did finish, so no paid answer
        is held hostage by a hung call in the same batch.
        """
        self._draining = True
        self._driver_lease.lift()
        asyncio.get_running_loop().call_later(timeout_s, self._cut_off)

    def renew(self, valid_s: float) -> None:
        """The driver is alive: start new requests for `valid_s` more seconds (`actors/driver_lease.py`)."""
        self._driver_lease.renew(valid_s)

    def _cut_off(self) -> None:
        for send in list(self._sending):
            send.cancel()

    async def close(self) -> None:
        self.seal()
        for lease in list(self._leases.values()):  # calls still returning may add one meanwhile
            await lease.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _estimate_output(self, spec: CallSpec) -> int:
        cap = output_cap(spec)
        return int(min(cap, self._out_mean.get(spec.model, min(cap, DEFAULT_OUTPUT_TOKENS))))

    async def _call(self, key: str, spec: CallSpec, stage: str) -> dict[str, Any]:
        ep = self.settings.endpoints[spec.model]
        row = await self._attempts(base_row(key, ep, spec.kind, self.settings.run_id), ep, spec, stage)
        if row["status"] not in (UNSENT, ABANDONED):
            await self._wal.answered(row)
        self._metrics.finished(row, ep.account)
        return row

    async def _attempts(
        self, row: dict[str, Any], ep: Endpoint, spec: CallSpec, stage: str
    ) -> dict[str, Any]:
        """Try `spec` until it succeeds, fails for good, or runs out of attempts; fill in `row`."""
        api_key = await self._api_key(ep)
        if api_key is None and ep.api_key_env is not None:
            why = f"environment variable {ep.api_key_env} is not set where the driver runs"
            return failed_row(row, ProviderError("auth", why))
        adapter = get_adapter(ep.provider)
        http = adapter.build(ep, spec)
        # A server that takes no key (api_key_env: null) gets no auth header at all.
        headers = {**http.headers, **(adapter.auth_headers(api_key) if api_key else {})}
        lease = self._lease(ep.account)
        in_est, out_est = estimate_input_tokens(spec), self._estimate_output(spec)
        start = time.monotonic()
        tags, sem, metrics = (spec.model, ep.account), self._sems[ep.account], self._metrics
        policy = self.settings.policy
        while True:
            if self._draining:
                return self._unstored(row, UNSENT)
            row["attempts"] += 1
            try:
                with metrics.level("specstress_queue_depth", *tags):
                    await lease.acquire(in_est, out_est)
                    await sem.acquire()
                try:
                    with metrics.level("specstress_queue_depth", *tags):
                        await self._driver_lease.wait()  # the last wait before the send but the log's
                    if self._draining:
                        return self._unstored(row, UNSENT)
                    await self._wal.sent(row["key"], spec.model, stage)  # durable before it goes out
                    with metrics.level("specstress_in_flight", *tags):
                        metrics.add("specstress_requests", *tags)
                        send = asyncio.ensure_future(
                            self._send(adapter, ep, spec, http.url, http.json, headers, lease)
                        )
                        self._sending.add(send)
                        try:
                            parsed, raw = await send
                        except asyncio.CancelledError:
                            current = asyncio.current_task()
                            if send.cancelled() and current is not None and not current.cancelling():
                                return self._unstored(row, ABANDONED)  # cut off by the drain
                            raise
                        finally:
                            self._sending.discard(send)
                finally:
                    sem.release()
            except ProviderError as err:
                if err.kind in ("rate_limit", "overloaded"):
                    # The provider may have counted this attempt: keep its reservation.
                    row["rate_limited"] += 1
                    lease.record_rate_limited(err.retry_after_s)
                else:
                    lease.record_usage(in_est, out_est, 0, 0)
                if policy.gives_up(err, row["attempts"]):
                    row["latency_s"] = time.monotonic() - start
                    return failed_row(row, err)
                await asyncio.sleep(policy.backoff_s(row["attempts"], err.retry_after_s, self._rng))
                continue
            lease.record_usage(in_est, out_est, parsed.input_tokens, parsed.output_tokens)
            self._learn_output(spec.model, parsed.output_tokens)
            row["raw"] = raw.decode("utf-8", "replace") if spec.kind == "chat" else None
            return ok_row(row, ep, parsed, time.monotonic() - start)

    async def _send(
        self,
        adapter: Any,
        ep: Endpoint,
        spec: CallSpec,
        url: str,
        body: dict[str, Any],
        headers: dict[str, str],
        lease: LeaseClient,
    ) -> tuple[ParsedResponse, bytes]:
        """One HTTP exchange, parsed; raises `ProviderError` for anything but a usable answer."""
        assert self._session is not None
        try:
            async with self._session.post(
                url, json=body, headers=headers, timeout=aiohttp.ClientTimeout(total=ep.timeout_s)
            ) as resp:
                payload = await resp.read()
                status, resp_headers = resp.status, resp.headers
        except TimeoutError as exc:
            raise ProviderError("timeout", f"no answer from {ep.model_key} within {ep.timeout_s}s") from exc
        except aiohttp.ClientPayloadError as exc:
            raise ProviderError("connection", f"{ep.model_key}: body cut off ({type(exc).__name__})") from exc
        except aiohttp.ClientError as exc:
            raise ProviderError("connection", f"{ep.model_key}: {type(exc).__name__}") from exc
        info = adapter.rate_limits(resp_headers)
        if info is not None:
            lease.record_headers(info)
        return adapter.parse(spec, status, resp_headers, payload), payload

    def _learn_output(self, model: str, tokens: int) -> None:
        prev = self._out_mean.get(model)
        self._out_mean[model] = tokens if prev is None else 0.9 * prev + 0.1 * tokens

    @staticmethod
    def _unstored(row: dict[str, Any], status: str) -> dict[str, Any]:
        """A row the engine will not store: `unsent` or `abandoned` by a drain."""
        row.update(status=status, finished_at=datetime.now(UTC))
        return row


@ray.remote(max_restarts=-1, max_task_retries=0, concurrency_groups={"driver_lease": 1})
class ClientActor:
    """A Ray actor around `ClientCore`. Async, so one process keeps many requests in flight."""

    def __init__(self, settings: ClientSettings, seed: int | None = None) -> None:
        self.core = ClientCore(settings, find_limiter, partial(fetch_key, settings.key_ring), seed=seed)

    async def call_batch(self, items: list[tuple[str, str]], stage: str) -> pa.RecordBatch:
        return await self.core.call_batch(items, stage)

    async def seal(self) -> None:
        self.core.seal()

    async def drain(self, timeout_s: float) -> None:
        self.core.drain(timeout_s)

    @ray.method(concurrency_group="driver_lease")  # its own loop: never queued behind call_batch
    async def renew(self, valid_s: float) -> None:
        self.core.renew(valid_s)

    async def close(self) -> None:
        await self.core.close()
