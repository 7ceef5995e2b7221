"""Provider adapters: one module per wire format, chosen with `get_adapter(provider)`."""

from actors.providers.base import NEUTRAL_PARAMS, Adapter, get_adapter

__all__ = ["NEUTRAL_PARAMS", "Adapter", "get_adapter"]
