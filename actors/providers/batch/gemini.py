"""Gemini batch mode: `models/{model}:batchGenerateContent` with inline requests, poll the operation.

https://ai.google.dev/gemini-api/docs/batch-mode and https://ai.google.dev/api/batch-mode.
Inline requests ({request, metadata: {key}}) suit batches up to 20 MB; the batch is a
long-running operation (`batches/{id}`) whose `metadata.state` runs BATCH_STATE_PENDING ->
RUNNING -> SUCCEEDED / FAILED / CANCELLED / EXPIRED (SDKs show JOB_STATE_*, both are read).
Responses come inline, in request order, each a GenerateContentResponse or a google.rpc
Status `error`.
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
    parse_json,
)
from actors.types import Endpoint

FIND_PAGES = 10
"""Pages of 100 batches searched for a batch whose create call a kill cut off."""

_RPC_STATUS: dict[int, int] = {
    1: 499,  # CANCELLED
    2: 500,  # UNKNOWN
    3: 400,  # INVALID_ARGUMENT
    4: 504,  # DEADLINE_EXCEEDED
    5: 404,  # NOT_FOUND
    6: 409,  # ALREADY_EXISTS
    7: 403,  # PERMISSION_DENIED
    8: 429,  # RESOURCE_EXHAUSTED
    9: 400,  # FAILED_PRECONDITION
    10: 409,  # ABORTED
    11: 400,  # OUT_OF_RANGE
    12: 501,  # UNIMPLEMENTED
    13: 500,  # INTERNAL
    14: 503,  # UNAVAILABLE
    15: 500,  # DATA_LOSS
    16: 401,  # UNAUTHENTICATED
}
"""The HTTP status of each `google.rpc.Code` (https://cloud.google.com/apis/design/errors). A failed
item's `error` is a `google.rpc.Status`, whose code is the RPC one: 8 (RESOURCE_EXHAUSTED) must
read as a 429 and 14 (UNAVAILABLE) as a 503, or the online classification takes them for 4xx."""

_ENDED = {"SUCCEEDED", "FAILED", "CANCELLED", "EXPIRED"}


def _phase(state: str) -> BatchPhase:
    bare = state.removeprefix("BATCH_STATE_").removeprefix("JOB_STATE_")
    if bare in _ENDED:
        return "ended"
    return "cancelling" if bare == "CANCELLING" else "in_progress"


class GeminiBatchAPI(BatchAPI):
    """`{base_url}/v1beta/models/{model_id}:batchGenerateContent` and `{base_url}/v1beta/batches/{id}`."""

    provider = "gemini"
    limits = BatchLimits(max_requests=50_000, max_bytes=20 * 1024**2, max_in_flight=20)

    def wrap(self, item: BatchItem) -> dict[str, Any]:
        return {"request": item.body, "metadata": {"key": item.key}}

    async def submit(self, http: BatchHttp, ep: Endpoint, items: list[BatchItem], tag: str) -> str:
        body = {
            "batch": {
                "display_name": tag,
                "input_config": {"requests": {"requests": [self.wrap(i) for i in items]}},
            }
        }
        url = f"{ep.base_url}/v1beta/models/{ep.model_id}:batchGenerateContent"
        created = parse_json(await http.request("POST", url, json_body=body, retry=False), "batch create")
        return str(created["name"]).removeprefix("batches/")

    async def poll(self, http: BatchHttp, ep: Endpoint, remote_id: str) -> RemoteBatch:
        op = parse_json(await http.request("GET", f"{ep.base_url}/v1beta/batches/{remote_id}"), "batch")
        meta = op.get("metadata") or {}
        state = str(meta.get("state", "BATCH_STATE_PENDING"))
        stats = meta.get("batchStats") or {}
        response = op.get("response") or {}
        inlined = (response.get("inlinedResponses") or {}).get("inlinedResponses") or []
        return RemoteBatch(
            remote_id=remote_id,
            phase=_phase(state),
            provider_status=state,
            counts=int_counts(stats),
            ref={"inlined": inlined},
        )

    async def results(self, http: BatchHttp, ep: Endpoint, batch: RemoteBatch) -> list[ItemResult]:
        # The responses come inline with the ended operation; `keys` of the record fill in a
        # missing `metadata.key` by position (the API keeps request order).
        return [_item(i, row) for i, row in enumerate(batch.ref.get("inlined", []))]

    async def find(self, http: BatchHttp, ep: Endpoint, tag: str) -> str | None:
        """Search the listed batches (`FIND_PAGES` pages) for our display name."""
        token = None
        for _ in range(FIND_PAGES):
            query = "?pageSize=100" + (f"&pageToken={token}" if token else "")
            page = parse_json(await http.request("GET", f"{ep.base_url}/v1beta/batches{query}"), "batch list")
            for op in page.get("operations") or []:
                if (op.get("metadata") or {}).get("displayName") == tag:
                    return str(op["name"]).removeprefix("batches/")
            token = page.get("nextPageToken")
            if not token:
                return None
        return None

    async def cancel(self, http: BatchHttp, ep: Endpoint, remote_id: str) -> None:
        await http.request("POST", f"{ep.base_url}/v1beta/batches/{remote_id}:cancel")


def _item(position: int, row: dict[str, Any]) -> ItemResult:
    key = str((row.get("metadata") or {}).get("key") or f"#{position}")
    if "response" in row:
        return ItemResult(key, "answered", 200, json.dumps(row["response"]).encode())
    error = row.get("error") if isinstance(row.get("error"), dict) else {}
    return ItemResult(key, "answered", _http_status(error.get("code")), json.dumps({"error": error}).encode())


def _http_status(code: Any) -> int:
    """The HTTP status of an item error's code: an RPC code mapped, a code already HTTP kept."""
    if not isinstance(code, int) or code < 1:
        return 500
    return _RPC_STATUS.get(code, code if code >= 100 else 500)
