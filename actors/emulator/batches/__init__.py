"""The emulator's batch APIs, one module per vendor (as `dialects/` holds the online formats).

`desk` keeps every batch and finishes its items with time; `base` holds what the vendors'
routes share; `openai`, `anthropic` and `gemini` each describe one API's paths and shapes.
"""

from __future__ import annotations

from aiohttp import web

from actors.emulator.batches.anthropic import AnthropicBatches
from actors.emulator.batches.desk import BatchDesk
from actors.emulator.batches.gemini import GeminiBatches
from actors.emulator.batches.openai import OpenAIBatches
from actors.emulator.dialects.base import Dialect


def batch_routes(desk: BatchDesk, openai: Dialect, anthropic: Dialect, gemini: Dialect) -> list[web.RouteDef]:
    """The routes of the three batch APIs on one desk, each answering errors in its dialect."""
    return [
        *OpenAIBatches(desk, openai).routes(),
        *AnthropicBatches(desk, anthropic).routes(),
        *GeminiBatches(desk, gemini).routes(),
    ]


__all__ = ["BatchDesk", "batch_routes"]
