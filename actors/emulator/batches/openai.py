"""OpenAI's batch API as the emulator speaks it: JSONL files uploaded, batches over them, result files.

Shapes follow https://platform.openai.com/docs/api-reference/batch: items answered with a
200 go to the output file; items answered with an error, and items never run (expired,
cancelled), go to the error file and count as failed.
"""

from __future__ import annotations

import json
import secrets
import time

from aiohttp import web

from actors.emulator.batches.base import VendorBatches, json_response
from actors.emulator.batches.desk import EmuBatch
from actors.emulator.dialects.base import JSON

ENDPOINT = "/v1/chat/completions"
"""The only endpoint the emulator batches."""


class OpenAIBatches(VendorBatches):
    """Files and batches under /v1; a batch's tag is its `specstress_batch` metadata."""

    provider = "openai"

    def routes(self) -> list[web.RouteDef]:
        """Every route but listing and reading batches, whose paths Gemini's v1 shares (see `batch_routes`)."""
        return [
            web.post("/v1/files", self.upload),
            web.get("/v1/files/{file_id}/content", self.file),
            web.post("/v1/batches", self.create),
            web.post("/v1/batches/{batch_id}/cancel", self.cancel),
        ]

    async def upload(self, request: web.Request) -> web.Response:
        fp = self._auth(request)
        if isinstance(fp, web.Response):
            return fp
        form = await request.post()
        upload = form.get("file")
        if form.get("purpose") != "batch" or not isinstance(upload, web.FileField):
            return self._error("invalid", "Expected purpose=batch and a file.")
        data = upload.file.read()
        file_id = self.desk.new_id("file-")
        self.desk.files[file_id] = data
        return json_response(
            200,
            {
                "id": file_id,
                "object": "file",
                "bytes": len(data),
                "created_at": int(time.time()),
                "filename": upload.filename,
                "purpose": "batch",
                "status": "processed",
            },
        )

    async def file(self, request: web.Request) -> web.Response:
        data = self.desk.files.get(request.match_info["file_id"])
        if data is None:
            return self._error("not_found", "No such file.")
        return web.Response(body=data, content_type="application/octet-stream")

    async def create(self, request: web.Request) -> web.Response:
        fp = self._auth(request)
        if isinstance(fp, web.Response):
            return fp
        body = await request.json()
        data = self.desk.files.get(str(body.get("input_file_id")))
        endpoint = body.get("endpoint")
        if data is None or endpoint != ENDPOINT or body.get("completion_window") != "24h":
            return self._error(
                "invalid", "Need an uploaded input_file_id, endpoint and completion_window '24h'."
            )
        items = []
        for n, line in enumerate(data.decode().splitlines(), 1):
            if not line.strip():
                continue
            row = json.loads(line)
            if row.get("url") != endpoint or row.get("method") != "POST" or not row.get("custom_id"):
                return self._error("invalid", f"line {n}: needs custom_id, method POST, url {endpoint}")
            items.append((str(row["custom_id"]), endpoint, row.get("body") or {}))
        batch = self.desk.create(
            self.provider,
            fp,
            self.dialect,
            None,
            items,
            "batch_",
            input_file_id=body["input_file_id"],
            tag=str((body.get("metadata") or {}).get("specstress_batch", "")),
        )
        return json_response(200, self._object(batch))

    async def list_batches(self, request: web.Request) -> web.Response:
        fp = self._auth(request)
        if isinstance(fp, web.Response):
            return fp
        self.desk.advance_all()
        page, more = self._page(
            self._mine(fp), request.query.get("after"), int(request.query.get("limit", 20))
        )
        data = [self._object(b) for b in page]
        return json_response(
            200, {"object": "list", "data": data, "has_more": more, "last_id": page[-1].id if page else None}
        )

    async def get(self, request: web.Request) -> web.Response:
        batch = self._batch(request)
        return batch if isinstance(batch, web.Response) else json_response(200, self._object(batch))

    async def cancel(self, request: web.Request) -> web.Response:
        batch = self._batch(request)
        if isinstance(batch, web.Response):
            return batch
        self.desk.cancel(batch)
        return json_response(200, self._object(batch))

    def _object(self, batch: EmuBatch) -> JSON:
        counts = batch.counts()
        status = "cancelling" if batch.cancelled else "in_progress"
        if batch.ended_at is not None:
            status = "cancelled" if batch.cancelled else "expired" if batch.expired else "completed"
            self._files(batch)
        return {
            **self._times(batch, status),
            "id": batch.id,
            "object": "batch",
            "endpoint": ENDPOINT,
            "errors": None,
            "input_file_id": batch.input_file_id,
            "completion_window": "24h",
            "status": status,
            "output_file_id": batch.files.get("output"),
            "error_file_id": batch.files.get("error"),
            "request_counts": {
                "total": len(batch.items),
                "completed": counts["succeeded"],
                "failed": counts["errored"] + counts["expired"] + counts["canceled"],
            },
            "metadata": {"specstress_batch": batch.tag} if batch.tag else None,
        }

    def _times(self, batch: EmuBatch, status: str) -> dict[str, int | None]:
        """The batch's Unix timestamps; the one named after an ended status is when it ended."""
        times: dict[str, float | None] = {
            "created_at": batch.created,
            "in_progress_at": batch.created,
            "expires_at": batch.expires_at,
            "cancelling_at": batch.cancelled_at,
        }
        for ended in ("completed", "expired", "cancelled"):
            times[f"{ended}_at"] = batch.ended_at if status == ended else None
        return {name: None if t is None else int(self.desk.wall_s(t)) for name, t in times.items()}

    def _files(self, batch: EmuBatch) -> None:
        """Write an ended batch's output and error files, once."""
        if batch.files:
            return
        ok, bad = [], []
        for item in batch.items:
            line: JSON = {"id": f"batch_req_{secrets.token_hex(6)}", "custom_id": item.custom_id}
            if item.outcome == "answered":
                line["response"] = {
                    "status_code": item.status,
                    "request_id": secrets.token_hex(6),
                    "body": item.answer,
                }
                line["error"] = None
                (ok if item.status == 200 else bad).append(line)
            else:
                code = "batch_expired" if item.outcome == "expired" else "batch_cancelled"
                line["response"] = None
                line["error"] = {"code": code, "message": f"This request was not run: {code}."}
                bad.append(line)
        for name, lines in (("output", ok), ("error", bad)):
            if lines:
                file_id = self.desk.new_id("file-")
                self.desk.files[file_id] = "".join(json.dumps(x) + "\n" for x in lines).encode()
                batch.files[name] = file_id
