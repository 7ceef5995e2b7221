"""The one rule for guessing a call's tokens before it is made: about 4 characters a token.

Rate-limit leases (the client actor), budget checks (the engine) and the batch router's
online-time estimate all guess sizes before any usage is known; they share this rule so
their guesses agree. Actual usage settles leases and prices stored calls later.
"""

from __future__ import annotations

from actors.types import CallSpec

CHARS_PER_TOKEN = 4
"""Prompt characters (or spec JSON bytes) per token, the usual English-text ratio."""

MESSAGE_OVERHEAD_TOKENS = 4
"""Tokens a chat format adds per message (role and separators)."""

REPLY_PRIMER_TOKENS = 1
"""Tokens a chat format adds once to open the reply."""

DEFAULT_OUTPUT_TOKENS = 512
"""Output assumed for a call with no `max_tokens` (and, in the client, no answers seen yet)."""

UNCAPPED_OUTPUT_TOKENS = 4096
"""The output cap the client assumes for a call with no `max_tokens`."""


def estimate_input_tokens(spec: CallSpec) -> int:
    """A cheap prompt-size estimate of one call: its text at `CHARS_PER_TOKEN`, plus the chat overhead."""
    chars = sum(len(m.content) for m in spec.messages) + sum(len(t) for t in spec.inputs)
    return chars // CHARS_PER_TOKEN + MESSAGE_OVERHEAD_TOKENS * len(spec.messages) + REPLY_PRIMER_TOKENS


def output_cap(spec: CallSpec) -> int:
    """The most output tokens `spec` can produce: its `max_tokens`, else `UNCAPPED_OUTPUT_TOKENS`."""
    return int(spec.param_dict.get("max_tokens") or UNCAPPED_OUTPUT_TOKENS)
