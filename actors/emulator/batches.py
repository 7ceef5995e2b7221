"""The emulator's batch APIs: OpenAI files + batches, Anthropic message batches, Gemini batch mode.

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
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from aiohttp import web

from actors.emulator.config import fingerprint
from actors.emulator.dialects.base import JSON, ChatInput, Dialect, WireError
from actors.emulator.faults import uniform

if TYPE_CHECKING:
    from actors.emulator.server import Emulator

Outcome = Literal["answered", "expired", "canceled"]


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
    tag: str = ""
    input_file_id: str | None = None
    cancelled: bool = False
    ended_at: float | None = None
    files: dict[str, str] = field(default_factory=dict)

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

    def __init__(self, emulator: Emulator, clock: Callable[[], float] = time.monotonic) -> None:
        self.emulator = emulator
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
        now, delay = self.clock(), self.emulator.config.batch.delay_s
        n = max(len(items), 1)
        batch = EmuBatch(
            id=self.new_id(prefix),
            provider=provider,
            fp=fp,
            dialect=dialect,
            model=model,
            created=now,
            items=[
                EmuItem(cid, path, body, now + delay * (i + 1) / n)
                for i, (cid, path, body) in enumerate(items)
            ],
            **extra,
        )
        self.batches[batch.id] = batch
        stats = self.emulator.stats
        stats.batches += 1
        for item in batch.items:
            stats.batch_by_hash[self._hash(item)] += 1
        return batch

    def get(self, batch_id: str, fp: str) -> EmuBatch | None:
        batch = self.batches.get(batch_id)
        return batch if batch is not None and batch.fp == fp else None

    def advance(self, batch: EmuBatch) -> None:
        """Finish the items whose time has come; expire or cancel the rest when the batch ends."""
        if batch.ended_at is not None:
            return
        now = self.clock()
        behaviour = self.emulator.config.batch
        for item in batch.items:
            if item.outcome is None and item.done_at <= min(now, batch.created + behaviour.expire_s):
                self._finish(batch, item)
        if all(i.outcome is not None for i in batch.items):
            batch.ended_at = now
        elif batch.cancelled or now >= batch.created + behaviour.expire_s:
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
            batch.cancelled = True

    def _hash(self, item: EmuItem) -> str:
        from actors.emulator.server import request_hash

        return request_hash(item.path, item.body)

    def _finish(self, batch: EmuBatch, item: EmuItem) -> None:
        emulator, dialect = self.emulator, batch.dialect
        rhash = self._hash(item)
        item.outcome = "answered"
        try:
            parsed = dialect.parse_chat(item.body, batch.model)
        except (WireError, ValueError, KeyError, TypeError) as exc:
            item.status, item.answer = dialect.error("invalid", f"Invalid request: {exc}")
            return
        seen = emulator.stats.batch_by_hash[rhash]
        if uniform(emulator.config.seed, "batch:" + rhash, seen) < emulator.config.batch.failure_rate:
            item.status, item.answer = dialect.error(
                "server", "The server had an error processing this request."
            )
            return
        assert isinstance(parsed, ChatInput)
        out = emulator.generate(parsed, batch.fp, rhash, dialect)
        item.status, item.answer = 200, dialect.chat_body(parsed.request.model_id, out)
        emulator.stats.ok_by_hash[rhash] += 1


def _json(status: int, body: Any) -> web.Response:
    return web.Response(status=status, body=json.dumps(body).encode(), content_type="application/json")


def _iso(monotonic_s: float | None, desk: BatchDesk) -> str | None:
    if monotonic_s is None:
        return None
    wall = time.time() - (desk.clock() - monotonic_s)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(wall)) + "Z"


class BatchRoutes:
    """The aiohttp handlers of the three batch APIs, on one `BatchDesk`."""

    def __init__(self, desk: BatchDesk, openai: Dialect, anthropic: Dialect, gemini: Dialect) -> None:
        self.desk = desk
        self.openai, self.anthropic, self.gemini = openai, anthropic, gemini

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v1/files", self.openai_upload),
            web.get("/v1/files/{file_id}/content", self.openai_file),
            web.post("/v1/batches", self.openai_create),
            web.get("/v1/batches", self.openai_list),
            web.get("/v1/batches/{batch_id}", self.openai_get),
            web.post("/v1/batches/{batch_id}/cancel", self.openai_cancel),
            web.post("/v1/messages/batches", self.anthropic_create),
            web.get("/v1/messages/batches/{batch_id}", self.anthropic_get),
            web.get("/v1/messages/batches/{batch_id}/results", self.anthropic_results),
            web.post("/v1/messages/batches/{batch_id}/cancel", self.anthropic_cancel),
            web.post("/v1beta/models/{model:[^/:]+}:batchGenerateContent", self.gemini_create),
            web.get("/v1beta/batches", self.gemini_list),
            web.get("/v1beta/batches/{batch_id}", self.gemini_get),
            web.post("/v1beta/batches/{batch_id}:cancel", self.gemini_cancel),
        ]

    # ---- shared --------------------------------------------------------------------

    def _auth(self, request: web.Request, dialect: Dialect) -> str | web.Response:
        key = dialect.api_key(request)
        if key is None:
            status, body = dialect.error("auth", "No API key was provided.")
            return _json(status, body)
        return fingerprint(key)

    def _error(self, dialect: Dialect, shape: Any, message: str) -> web.Response:
        status, body = dialect.error(shape, message)
        return _json(status, body)

    def _batch(self, request: web.Request, dialect: Dialect) -> EmuBatch | web.Response:
        fp = self._auth(request, dialect)
        if isinstance(fp, web.Response):
            return fp
        batch = self.desk.get(request.match_info["batch_id"], fp)
        if batch is None:
            return self._error(dialect, "not_found", "No such batch.")
        self.desk.advance_all()
        return batch

    # ---- OpenAI --------------------------------------------------------------------

    async def openai_upload(self, request: web.Request) -> web.Response:
        fp = self._auth(request, self.openai)
        if isinstance(fp, web.Response):
            return fp
        form = await request.post()
        upload = form.get("file")
        if form.get("purpose") != "batch" or not isinstance(upload, web.FileField):
            return self._error(self.openai, "invalid", "Expected purpose=batch and a file.")
        data = upload.file.read()
        file_id = self.desk.new_id("file-")
        self.desk.files[file_id] = data
        return _json(
            200,
            {
                "id": file_id,
                "object": "file",
                "bytes": len(data),
                "filename": upload.filename,
                "purpose": "batch",
            },
        )

    async def openai_file(self, request: web.Request) -> web.Response:
        data = self.desk.files.get(request.match_info["file_id"])
        if data is None:
            return self._error(self.openai, "not_found", "No such file.")
        return web.Response(body=data, content_type="application/octet-stream")

    async def openai_create(self, request: web.Request) -> web.Response:
        fp = self._auth(request, self.openai)
        if isinstance(fp, web.Response):
            return fp
        body = await request.json()
        data = self.desk.files.get(str(body.get("input_file_id")))
        endpoint = body.get("endpoint")
        if data is None or endpoint != "/v1/chat/completions" or body.get("completion_window") != "24h":
            return self._error(
                self.openai,
                "invalid",
                "Need an uploaded input_file_id, endpoint and completion_window '24h'.",
            )
        items = []
        for n, line in enumerate(data.decode().splitlines(), 1):
            if not line.strip():
                continue
            row = json.loads(line)
            if row.get("url") != endpoint or row.get("method") != "POST" or not row.get("custom_id"):
                return self._error(
                    self.openai, "invalid", f"line {n}: needs custom_id, method POST, url {endpoint}"
                )
            items.append((str(row["custom_id"]), endpoint, row.get("body") or {}))
        batch = self.desk.create(
            "openai",
            fp,
            self.openai,
            None,
            items,
            "batch_",
            input_file_id=body["input_file_id"],
            tag=str((body.get("metadata") or {}).get("specstress_batch", "")),
        )
        return _json(200, self._openai_object(batch))

    def _mine(self, fp: str, provider: str) -> list[EmuBatch]:
        """A key's batches of one provider, newest first."""
        own = [b for b in self.desk.batches.values() if b.fp == fp and b.provider == provider]
        return sorted(own, key=lambda b: b.created, reverse=True)

    def _page(self, batches: list[EmuBatch], after: str | None, size: int) -> tuple[list[EmuBatch], bool]:
        ids = [b.id for b in batches]
        start = ids.index(after) + 1 if after in ids else 0
        return batches[start : start + size], start + size < len(batches)

    async def openai_list(self, request: web.Request) -> web.Response:
        fp = self._auth(request, self.openai)
        if isinstance(fp, web.Response):
            return fp
        self.desk.advance_all()
        batches = self._mine(fp, "openai")
        page, more = self._page(batches, request.query.get("after"), int(request.query.get("limit", 20)))
        data = [self._openai_object(b) for b in page]
        return _json(
            200, {"object": "list", "data": data, "has_more": more, "last_id": page[-1].id if page else None}
        )

    async def gemini_list(self, request: web.Request) -> web.Response:
        fp = self._auth(request, self.gemini)
        if isinstance(fp, web.Response):
            return fp
        self.desk.advance_all()
        batches = self._mine(fp, "gemini")
        token = request.query.get("pageToken")
        page, more = self._page(batches, token, int(request.query.get("pageSize", 50)))
        body: JSON = {"operations": [self._gemini_operation(b) for b in page]}
        if more:
            body["nextPageToken"] = page[-1].id
        return _json(200, body)

    async def openai_get(self, request: web.Request) -> web.Response:
        batch = self._batch(request, self.openai)
        return batch if isinstance(batch, web.Response) else _json(200, self._openai_object(batch))

    async def openai_cancel(self, request: web.Request) -> web.Response:
        batch = self._batch(request, self.openai)
        if isinstance(batch, web.Response):
            return batch
        self.desk.cancel(batch)
        body = self._openai_object(batch)
        if batch.cancelled and body["status"] != "cancelled":
            body["status"] = "cancelling"
        return _json(200, body)

    def _openai_object(self, batch: EmuBatch) -> JSON:
        counts = batch.counts()
        status = "in_progress"
        if batch.ended_at is not None:
            status = "cancelled" if batch.cancelled else "expired" if batch.expired else "completed"
            self._openai_files(batch)
        return {
            "id": batch.id,
            "object": "batch",
            "endpoint": "/v1/chat/completions",
            "errors": None,
            "input_file_id": batch.input_file_id,
            "completion_window": "24h",
            "status": status,
            "output_file_id": batch.files.get("output"),
            "error_file_id": batch.files.get("error"),
            "created_at": int(time.time() - (self.desk.clock() - batch.created)),
            "request_counts": {
                "total": len(batch.items),
                "completed": counts["succeeded"],
                "failed": counts["errored"] + counts["expired"] + counts["canceled"],
            },
            "metadata": {"specstress_batch": batch.tag} if batch.tag else None,
        }

    def _openai_files(self, batch: EmuBatch) -> None:
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

    # ---- Anthropic -----------------------------------------------------------------

    async def anthropic_create(self, request: web.Request) -> web.Response:
        fp = self._auth(request, self.anthropic)
        if isinstance(fp, web.Response):
            return fp
        body = await request.json()
        reqs = body.get("requests")
        if not isinstance(reqs, list) or not reqs:
            return self._error(self.anthropic, "invalid", "requests: must be a non-empty list")
        items = []
        for r in reqs:
            if not isinstance(r, dict) or not r.get("custom_id") or not isinstance(r.get("params"), dict):
                return self._error(self.anthropic, "invalid", "each request needs custom_id and params")
            items.append((str(r["custom_id"]), "/v1/messages", r["params"]))
        batch = self.desk.create("anthropic", fp, self.anthropic, None, items, "msgbatch_")
        return _json(200, self._anthropic_object(batch, request))

    async def anthropic_get(self, request: web.Request) -> web.Response:
        batch = self._batch(request, self.anthropic)
        return (
            batch if isinstance(batch, web.Response) else _json(200, self._anthropic_object(batch, request))
        )

    async def anthropic_cancel(self, request: web.Request) -> web.Response:
        batch = self._batch(request, self.anthropic)
        if isinstance(batch, web.Response):
            return batch
        self.desk.cancel(batch)
        return _json(200, self._anthropic_object(batch, request))

    async def anthropic_results(self, request: web.Request) -> web.Response:
        batch = self._batch(request, self.anthropic)
        if isinstance(batch, web.Response):
            return batch
        if batch.ended_at is None:
            return self._error(self.anthropic, "invalid", "Batch has not ended.")
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

    def _anthropic_object(self, batch: EmuBatch, request: web.Request) -> JSON:
        ended = batch.ended_at is not None
        status = "ended" if ended else "canceling" if batch.cancelled else "in_progress"
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": status,
            "request_counts": batch.counts(),
            "created_at": _iso(batch.created, self.desk),
            "ended_at": _iso(batch.ended_at, self.desk),
            "results_url": f"{request.url.origin()}/v1/messages/batches/{batch.id}/results"
            if ended
            else None,
        }

    # ---- Gemini --------------------------------------------------------------------

    async def gemini_create(self, request: web.Request) -> web.Response:
        fp = self._auth(request, self.gemini)
        if isinstance(fp, web.Response):
            return fp
        model = request.match_info["model"]
        body = await request.json()
        spec = body.get("batch") if isinstance(body, dict) else None
        inline = (((spec or {}).get("input_config") or {}).get("requests") or {}).get("requests")
        if not isinstance(inline, list) or not inline:
            return self._error(
                self.gemini, "invalid", "batch.input_config.requests.requests: must be a non-empty list"
            )
        path = f"/v1beta/models/{model}:generateContent"
        items = []
        for n, r in enumerate(inline):
            if not isinstance(r, dict) or not isinstance(r.get("request"), dict):
                return self._error(self.gemini, "invalid", f"requests[{n}]: needs a request")
            key = str((r.get("metadata") or {}).get("key") or n)
            items.append((key, path, r["request"]))
        batch = self.desk.create(
            "gemini",
            fp,
            self.gemini,
            model,
            items,
            "",
            tag=str(spec.get("display_name", "")),  # type: ignore[union-attr]
        )
        return _json(200, self._gemini_operation(batch))

    async def gemini_get(self, request: web.Request) -> web.Response:
        batch = self._batch(request, self.gemini)
        return batch if isinstance(batch, web.Response) else _json(200, self._gemini_operation(batch))

    async def gemini_cancel(self, request: web.Request) -> web.Response:
        batch = self._batch(request, self.gemini)
        if isinstance(batch, web.Response):
            return batch
        self.desk.cancel(batch)
        return _json(200, {})

    def _gemini_operation(self, batch: EmuBatch) -> JSON:
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
        op: JSON = {
            "name": f"batches/{batch.id}",
            "metadata": {
                "@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch",
                "model": f"models/{batch.model}",
                "displayName": batch.tag,
                "state": state,
                "createTime": _iso(batch.created, self.desk),
                "batchStats": {
                    "requestCount": len(batch.items),
                    "successfulRequestCount": counts["succeeded"],
                    "failedRequestCount": counts["errored"],
                    "pendingRequestCount": counts["processing"],
                },
            },
            "done": ended,
        }
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
            op["response"] = {
                "@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatchOutput",
                "inlinedResponses": {"inlinedResponses": responses},
            }
        return op
