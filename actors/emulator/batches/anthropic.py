"""Anthropic's message batches as the emulator speaks them: inline requests, a JSONL results URL.

Shapes follow https://docs.anthropic.com/en/api/creating-message-batches. A batch carries
no name or metadata, so nothing can find it by a tag.
"""

from __future__ import annotations

import json

from aiohttp import web

from actors.emulator.batches.base import VendorBatches, json_response
from actors.emulator.batches.desk import EmuBatch
from actors.emulator.dialects.base import JSON


class AnthropicBatches(VendorBatches):
    """Message batches under /v1/messages/batches; results once a batch has ended."""

    provider = "anthropic"

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v1/messages/batches", self.create),
            web.get("/v1/messages/batches/{batch_id}", self.get),
            web.get("/v1/messages/batches/{batch_id}/results", self.results),
            web.post("/v1/messages/batches/{batch_id}/cancel", self.cancel),
        ]

    async def create(self, request: web.Request) -> web.Response:
        fp = self._auth(request)
        if isinstance(fp, web.Response):
            return fp
        body = await request.json()
        reqs = body.get("requests")
        if not isinstance(reqs, list) or not reqs:
            return self._error("invalid", "requests: must be a non-empty list")
        items = []
        for r in reqs:
            if not isinstance(r, dict) or not r.get("custom_id") or not isinstance(r.get("params"), dict):
                return self._error("invalid", "each request needs custom_id and params")
            items.append((str(r["custom_id"]), "/v1/messages", r["params"]))
        batch = self.desk.create(self.provider, fp, self.dialect, None, items, "msgbatch_")
        return json_response(200, self._object(batch, request))

    async def get(self, request: web.Request) -> web.Response:
        batch = self._batch(request)
        return batch if isinstance(batch, web.Response) else json_response(200, self._object(batch, request))

    async def cancel(self, request: web.Request) -> web.Response:
        batch = self._batch(request)
        if isinstance(batch, web.Response):
            return batch
        self.desk.cancel(batch)
        return json_response(200, self._object(batch, request))

    async def results(self, request: web.Request) -> web.Response:
        batch = self._batch(request)
        if isinstance(batch, web.Response):
            return batch
        if batch.ended_at is None:
            return self._error("invalid", "Batch has not ended.")
        lines = []
        for item in batch.items:
            if item.outcome == "answered" and item.status == 200:
                result: JSON = {"type": "succeeded", "message": item.answer}
            elif item.outcome == "answered":
                result = {"type": "errored", "error": item.answer}
            else:
                result = {"type": item.outcome}
            lines.append(json.dumps({"custom_id": item.custom_id, "result": result}) + "\n")
        return web.Response(body="".join(lines).encode(), content_type="application/binary")

    def _object(self, batch: EmuBatch, request: web.Request) -> JSON:
        ended = batch.ended_at is not None
        status = "ended" if ended else "canceling" if batch.cancelled else "in_progress"
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": status,
            "request_counts": batch.counts(),
            "created_at": self.desk.iso(batch.created),
            "expires_at": self.desk.iso(batch.expires_at),
            "cancel_initiated_at": self.desk.iso(batch.cancelled_at),
            "ended_at": self.desk.iso(batch.ended_at),
            "archived_at": None,
            "results_url": f"{request.url.origin()}/v1/messages/batches/{batch.id}/results"
            if ended
            else None,
        }
