"""OpenAI Batch API: upload a JSONL file, create a batch, poll it, read its output and error files.

https://platform.openai.com/docs/guides/batch and /docs/api-reference/batch. Each input
line is {custom_id, method, url, body}; output and error lines carry the custom_id and a
`response` {status_code, body} or an `error` {code, message} (e.g. `batch_expired`). Up
to 50,000 requests and 200 MB per input file; the completion window is "24h".
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp

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

CHAT_PATH = "/v1/chat/completions"
_PHASES: dict[str, BatchPhase] = {
    "validating": "in_progress",
    "in_progress": "in_progress",
    "finalizing": "in_progress",
    "cancelling": "cancelling",
    "completed": "ended",
    "failed": "ended",
    "expired": "ended",
    "cancelled": "ended",
}
FIND_PAGES = 10
"""Pages of 100 batches searched for a batch whose create call a kill cut off."""
_NEVER_RAN = {"batch_expired": "expired", "batch_cancelled": "canceled"}


class OpenAIBatchAPI(BatchAPI):
    """Files and batches under `{base_url}` (which carries "/v1")."""

    provider = "openai"
    limits = BatchLimits(max_requests=50_000, max_bytes=200 * 1024**2, max_in_flight=20)

    def wrap(self, item: BatchItem) -> dict[str, Any]:
        return {"custom_id": item.key, "method": "POST", "url": CHAT_PATH, "body": item.body}

    async def submit(self, http: BatchHttp, ep: Endpoint, items: list[BatchItem], tag: str) -> str:
        lines = "".join(json.dumps(self.wrap(i), separators=(",", ":")) + "\n" for i in items).encode()
        form = aiohttp.FormData()
        form.add_field("purpose", "batch")
        form.add_field("file", lines, filename=f"{tag}.jsonl", content_type="application/jsonl")
        uploaded = parse_json(await http.request("POST", f"{ep.base_url}/files", data=form), "file upload")
        created = await http.request(
            "POST",
            f"{ep.base_url}/batches",
            json_body={
                "input_file_id": uploaded["id"],
                "endpoint": CHAT_PATH,
                "completion_window": "24h",
                "metadata": {"specstress_batch": tag},
            },
            retry=False,
        )
        return str(parse_json(created, "batch create")["id"])

    async def poll(self, http: BatchHttp, ep: Endpoint, remote_id: str) -> RemoteBatch:
        data = parse_json(await http.request("GET", f"{ep.base_url}/batches/{remote_id}"), "batch")
        status = str(data.get("status"))
        return RemoteBatch(
            remote_id=remote_id,
            phase=_PHASES.get(status, "in_progress"),
            provider_status=status,
            counts=int_counts(data.get("request_counts")),
            ref={"files": [f for f in (data.get("output_file_id"), data.get("error_file_id")) if f]},
        )

    async def results(self, http: BatchHttp, ep: Endpoint, batch: RemoteBatch) -> list[ItemResult]:
        out: list[ItemResult] = []
        for file_id in batch.ref.get("files", []):
            body = await http.request("GET", f"{ep.base_url}/files/{file_id}/content")
            out.extend(_item(row) for row in jsonl(body))
        return out

    async def find(self, http: BatchHttp, ep: Endpoint, tag: str) -> str | None:
        """Search the most recent batches (newest first, `FIND_PAGES` pages) for our metadata tag."""
        after = None
        for _ in range(FIND_PAGES):
            query = "?limit=100" + (f"&after={after}" if after else "")
            page = parse_json(await http.request("GET", f"{ep.base_url}/batches{query}"), "batch list")
            for batch in page.get("data") or []:
                if (batch.get("metadata") or {}).get("specstress_batch") == tag:
                    return str(batch["id"])
            after = page.get("last_id")
            if not page.get("has_more") or not after:
                return None
        return None

    async def cancel(self, http: BatchHttp, ep: Endpoint, remote_id: str) -> None:
        await http.request("POST", f"{ep.base_url}/batches/{remote_id}/cancel")


def _item(row: dict[str, Any]) -> ItemResult:
    key = str(row.get("custom_id"))
    response = row.get("response")
    if isinstance(response, dict) and "status_code" in response:
        body = json.dumps(response.get("body")).encode()
        return ItemResult(key, "answered", int(response["status_code"]), body)
    error = row.get("error") or {}
    code = error.get("code") if isinstance(error, dict) else None
    never = _NEVER_RAN.get(str(code))
    if never is not None:
        return ItemResult(key, never)  # type: ignore[arg-type]
    return ItemResult(key, "answered", 500, json.dumps({"error": error}).encode())
