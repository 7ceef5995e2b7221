"""What every vendor's batch routes share: auth, errors, finding a key's batches, paging.

A vendor module only describes its paths and its JSON shapes, as a dialect does for the
online endpoints; the batches themselves live on the shared `BatchDesk`.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from aiohttp import web

from actors.emulator.batches.desk import BatchDesk, EmuBatch
from actors.emulator.config import fingerprint
from actors.emulator.dialects.base import Dialect, ErrorShape


def json_response(status: int, body: Any) -> web.Response:
    return web.Response(status=status, body=json.dumps(body).encode(), content_type="application/json")


class VendorBatches(ABC):
    """One vendor's batch API: its aiohttp handlers on the shared desk, in its dialect's errors."""

    provider: ClassVar[str]
    """The `EmuBatch.provider` of the batches this API creates and lists."""

    def __init__(self, desk: BatchDesk, dialect: Dialect) -> None:
        self.desk = desk
        self.dialect = dialect

    @abstractmethod
    def routes(self) -> list[web.RouteDef]:
        """This API's routes."""

    def _auth(self, request: web.Request) -> str | web.Response:
        """The key's fingerprint, or the dialect's auth error."""
        key = self.dialect.api_key(request)
        if key is None:
            return self._error("auth", "No API key was provided.")
        return fingerprint(key)

    def _error(self, shape: ErrorShape, message: str) -> web.Response:
        status, body = self.dialect.error(shape, message)
        return json_response(status, body)

    def _batch(self, request: web.Request) -> EmuBatch | web.Response:
        """The key's batch named in the path, advanced to now; or an error response."""
        fp = self._auth(request)
        if isinstance(fp, web.Response):
            return fp
        batch = self.desk.get(request.match_info["batch_id"], fp)
        if batch is None:
            return self._error("not_found", "No such batch.")
        self.desk.advance_all()
        return batch

    def _mine(self, fp: str) -> list[EmuBatch]:
        """A key's batches of this provider, newest first."""
        own = [b for b in self.desk.batches.values() if b.fp == fp and b.provider == self.provider]
        return sorted(own, key=lambda b: b.created, reverse=True)

    @staticmethod
    def _page(batches: list[EmuBatch], after: str | None, size: int) -> tuple[list[EmuBatch], bool]:
        """Up to `size` batches after the one with id `after` (from the start if unknown); and whether more follow."""
        ids = [b.id for b in batches]
        start = ids.index(after) + 1 if after in ids else 0
        return batches[start : start + size], start + size < len(batches)
