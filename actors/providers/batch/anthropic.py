"""Anthropic Message Batches: one POST with every request, poll, then stream the JSONL results.

https://docs.anthropic.com/en/docs/build-with-claude/batch-processing. Requests are
{custom_id, params}, where params is a Messages API body; a batch holds up to 100,000
requests or 256 MB. `processing_status` is in_progress, canceling or ended; each result
line's `result.type` is succeeded, errored, canceled or expired.
"""

from __future__ import annotations

import json
from typing import Any

from actors.providers.batch.base import (
    BatchAPI,
    BatchHttp,
    BatchItem,
    BatchLimits,
    BatchPhase,
    ItemResult,
    RemoteBatch,
    int_counts,
    jsonl,
    parse_json,
)
from actors.types import Endpoint

_PHASES: dict[str, BatchPhase] = {"in_progress": "in_progress", "canceling": "cancelling", "ended": "ended"}
_ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
"""The HTTP status of each documented error type (https://docs.anthropic.com/en/api/errors): an
errored result line carries only the type, and the online classification reads the status."""


class AnthropicBatchAPI(BatchAPI):
    """`{base_url}/v1/messages/batches`."""

    provider = "anthropic"
    limits = BatchLimits(max_requests=100_000, max_bytes=256 * 1024**2, max_in_flight=20)

    def wrap(self, item: BatchItem) -> dict[str, Any]:
        return {"custom_id": item.key, "params": item.body}

    async def submit(self, http: BatchHttp, ep: Endpoint, items: list[BatchItem], tag: str) -> str:
        body = {"requests": [self.wrap(i) for i in items]}
        created = await http.request(
            "POST", f"{ep.base_url}/v1/messages/batches", json_body=body, retry=False
        )
        return str(parse_json(created, "message batch create")["id"])

    async def poll(self, http: BatchHttp, ep: Endpoint, remote_id: str) -> RemoteBatch:
        url = f"{ep.base_url}/v1/messages/batches/{remote_id}"
        data = parse_json(await http.request("GET", url), "message batch")
        status = str(data.get("processing_status"))
        return RemoteBatch(
            remote_id=remote_id,
            phase=_PHASES.get(status, "in_progress"),
            provider_status=status,
            counts=int_counts(data.get("request_counts")),
            ref={"results_url": data.get("results_url")},
        )

    async def results(self, http: BatchHttp, ep: Endpoint, batch: RemoteBatch) -> list[ItemResult]:
        url = batch.ref.get("results_url")
        if not url:
            return []
        return [_item(row) for row in jsonl(await http.request("GET", str(url)))]

    async def cancel(self, http: BatchHttp, ep: Endpoint, remote_id: str) -> None:
        await http.request("POST", f"{ep.base_url}/v1/messages/batches/{remote_id}/cancel")


def _item(row: dict[str, Any]) -> ItemResult:
    key = str(row.get("custom_id"))
    result = row.get("result") or {}
    kind = result.get("type")
    if kind == "succeeded":
        return ItemResult(key, "answered", 200, json.dumps(result.get("message")).encode())
    if kind in ("expired", "canceled"):
        return ItemResult(key, kind)
    # errored: {"type": "error", "error": {"type": ..., "message": ...}}, the online error shape.
    error = result.get("error") or {}
    inner = error.get("error") if isinstance(error, dict) else None
    status = _ERROR_STATUS.get(str((inner or {}).get("type")), 500)
    return ItemResult(key, "answered", status, json.dumps(error).encode())
