"""Batch adapters: one module per provider's batch API, chosen with `get_batch_api(provider)`."""

from __future__ import annotations

from actors.providers.batch.anthropic import AnthropicBatchAPI
from actors.providers.batch.base import BatchAPI, BatchItem, BatchLimits, ItemResult, RemoteBatch
from actors.providers.batch.gemini import GeminiBatchAPI
from actors.providers.batch.openai import OpenAIBatchAPI

_APIS: dict[str, BatchAPI] = {
    api.provider: api for api in (OpenAIBatchAPI(), AnthropicBatchAPI(), GeminiBatchAPI())
}


def get_batch_api(provider: str) -> BatchAPI | None:
    """The batch API of a wire format, or None when it has none."""
    return _APIS.get(provider)


__all__ = ["BatchAPI", "BatchItem", "BatchLimits", "ItemResult", "RemoteBatch", "get_batch_api"]
