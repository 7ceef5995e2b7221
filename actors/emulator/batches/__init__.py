"""The emulator's batch APIs, one module per vendor (as `dialects/` holds the online formats).

`desk` keeps every batch and finishes its items with time; `base` holds what the vendors'
routes share; `openai`, `anthropic` and `gemini` each describe one API's paths and shapes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from actors.emulator.batches.anthropic import AnthropicBatches
from actors.emulator.batches.desk import BatchDesk
from actors.emulator.batches.gemini import GeminiBatches
from actors.emulator.batches.openai import OpenAIBatches
from actors.emulator.dialects.base import Dialect

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def batch_routes(desk: BatchDesk, openai: Dialect, anthropic: Dialect, gemini: Dialect) -> list[web.RouteDef]:
    """The routes of the three batch APIs on one desk, each answering errors in its dialect.

    OpenAI and Gemini's v1 both list batches at GET /v1/batches and read one at
    GET /v1/batches/{id}; on one host, the key's header tells them apart (a Gemini key
    comes as `x-goog-api-key` or `?key=`, an OpenAI one as a bearer token).
    """
    openai_api, gemini_api = OpenAIBatches(desk, openai), GeminiBatches(desk, gemini)

    def by_key(gemini_handler: Handler, openai_handler: Handler) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            is_gemini = gemini.api_key(request) is not None
            return await (gemini_handler if is_gemini else openai_handler)(request)

        return handler

    return [
        *openai_api.routes(),
        *AnthropicBatches(desk, anthropic).routes(),
        *gemini_api.routes(),
        web.get("/v1/batches", by_key(gemini_api.list_batches, openai_api.list_batches)),
        web.get("/v1/batches/{batch_id}", by_key(gemini_api.get, openai_api.get)),
    ]


__all__ = ["BatchDesk", "batch_routes"]
