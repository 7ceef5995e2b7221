"""Gemini's batch mode as the emulator speaks it: inline requests in, a long-running operation out.

Shapes follow https://ai.google.dev/gemini-api/docs/batch-mode: an ended operation
carries the inline responses, keyed by each request's `metadata.key`, both as its
`response` and as its metadata's `output` (where google-genai reads them); expired and
cancelled requests get no response at all. Bodies are protobuf JSON, so a field may be
spelled in snake_case (specstress) or lowerCamelCase (google-genai). The API answers
under /v1beta and /v1 (google-genai's default).
"""

from __future__ import annotations

from aiohttp import web

from actors.emulator.batches.base import VendorBatches, json_response
from actors.emulator.batches.desk import EmuBatch
from actors.emulator.dialects.base import JSON
from actors.emulator.dialects.gemini import proto_field


class GeminiBatches(VendorBatches):
    """Batches created on a model's path; a batch's tag is its display name."""

    provider = "gemini"

    def routes(self) -> list[web.RouteDef]:
        """Every route under /v1beta; under /v1 those OpenAI's batch paths do not share (see `batch_routes`)."""
        return [
            web.post("/{version:v1beta|v1}/models/{model:[^/:]+}:batchGenerateContent", self.create),
            web.post("/{version:v1beta|v1}/batches/{batch_id}:cancel", self.cancel),
            web.get("/v1beta/batches", self.list_batches),
            web.get("/v1beta/batches/{batch_id}", self.get),
        ]

    async def create(self, request: web.Request) -> web.Response:
        fp = self._auth(request)
        if isinstance(fp, web.Response):
            return fp
        model = request.match_info["model"]
        body = await request.json()
        spec = body.get("batch") if isinstance(body, dict) else None
        if not isinstance(spec, dict):
            return self._error("invalid", "batch: must be an object")
        inline = ((proto_field(spec, "input_config") or {}).get("requests") or {}).get("requests")
        if not isinstance(inline, list) or not inline:
            return self._error("invalid", "batch.input_config.requests.requests: must be a non-empty list")
        path = f"/{request.match_info['version']}/models/{model}:generateContent"
        items = []
        for n, r in enumerate(inline):
            if not isinstance(r, dict) or not isinstance(r.get("request"), dict):
                return self._error("invalid", f"requests[{n}]: needs a request")
            key = str((r.get("metadata") or {}).get("key") or n)
            items.append((key, path, r["request"]))
        batch = self.desk.create(
            self.provider,
            fp,
            self.dialect,
            model,
            items,
            "",
            tag=str(proto_field(spec, "display_name") or ""),
        )
        return json_response(200, self._operation(batch))

    async def list_batches(self, request: web.Request) -> web.Response:
        fp = self._auth(request)
        if isinstance(fp, web.Response):
            return fp
        self.desk.advance_all()
        token = request.query.get("pageToken")
        page, more = self._page(self._mine(fp), token, int(request.query.get("pageSize", 50)))
        body: JSON = {"operations": [self._operation(b) for b in page]}
        if more:
            body["nextPageToken"] = page[-1].id
        return json_response(200, body)

    async def get(self, request: web.Request) -> web.Response:
        batch = self._batch(request)
        return batch if isinstance(batch, web.Response) else json_response(200, self._operation(batch))

    async def cancel(self, request: web.Request) -> web.Response:
        batch = self._batch(request)
        if isinstance(batch, web.Response):
            return batch
        self.desk.cancel(batch)
        return json_response(200, {})

    def _operation(self, batch: EmuBatch) -> JSON:
        counts = batch.counts()
        ended = batch.ended_at is not None
        state = "BATCH_STATE_RUNNING"
        if ended:
            state = (
                "BATCH_STATE_CANCELLED"
                if batch.cancelled
                else "BATCH_STATE_EXPIRED"
                if batch.expired
                else "BATCH_STATE_SUCCEEDED"
            )
        metadata: JSON = {
            "@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch",
            "model": f"models/{batch.model}",
            "displayName": batch.tag,
            "state": state,
            "createTime": self.desk.iso(batch.created),
            "updateTime": self.desk.iso(
                max(t for t in (batch.created, batch.cancelled_at, batch.ended_at) if t is not None)
            ),
            "batchStats": {
                "requestCount": len(batch.items),
                "successfulRequestCount": counts["succeeded"],
                "failedRequestCount": counts["errored"],
                "pendingRequestCount": counts["processing"],
            },
        }
        op: JSON = {"name": f"batches/{batch.id}", "metadata": metadata, "done": ended}
        if ended:
            responses = []
            for item in batch.items:
                if item.outcome != "answered":
                    continue  # expired and cancelled requests get no response
                entry: JSON = {"metadata": {"key": item.custom_id}}
                if item.status == 200:
                    entry["response"] = item.answer
                else:
                    entry["error"] = (item.answer or {}).get("error", {})
                responses.append(entry)
            output = {"inlinedResponses": {"inlinedResponses": responses}}
            metadata["endTime"] = self.desk.iso(batch.ended_at)
            metadata["output"] = output
            op["response"] = {
                "@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatchOutput",
                **output,
            }
        return op
