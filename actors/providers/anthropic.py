"""Anthropic messages API, with extended thinking and prompt caching.

https://docs.anthropic.com/en/api/messages. The system prompt is a top-level list of
text blocks, so it can carry `cache_control`. With thinking on, `max_tokens` covers the
thinking budget plus the answer, and sampling parameters must be left out. A structured
answer comes back as a `tool_use` block's input (`actors.providers.structured`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from actors.errors import ProviderError
from actors.providers.base import Adapter, WireModel, finish_flag, split_system
from actors.providers.headers import anthropic_rate_limits, lower_keys
from actors.providers.structured import anthropic_tool
from actors.types import CallSpec, Endpoint, FinishReason, HttpCall, ParsedResponse, RateLimitInfo

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
"""Anthropic requires `max_tokens`; used when a spec gives none."""

_FINISH: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",  # cut where the context window ran out, as max_tokens
    "refusal": "refusal",
    "tool_use": "stop",  # a structured answer, given as the answer tool's input
}


class _Block(WireModel):
    type: str
    text: str | None = None
    thinking: str | None = None
    input: dict[str, Any] | None = None
    """A `tool_use` block's arguments: a structured answer (`actors.providers.structured`)."""


class _Usage(WireModel):
    input_tokens: int
    output_tokens: int
    cache_read_input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None


class _Message(WireModel):
    content: list[_Block]
    stop_reason: str | None = None
    usage: _Usage


def answer_text(content: list[_Block]) -> str:
    """The answer: a structured answer's tool input as JSON if the model called the tool, else its text."""
    called = [b.input for b in content if b.type == "tool_use" and b.input is not None]
    if called:
        return json.dumps(called[0], ensure_ascii=False)
    return "".join(b.text or "" for b in content if b.type == "text")


class AnthropicAdapter(Adapter):
    """POST {base_url}/v1/messages with `anthropic-version`."""

    provider = "anthropic"

    def build_chat(self, endpoint: Endpoint, spec: CallSpec) -> HttpCall:
        params = spec.param_dict
        system, rest = split_system(spec.messages)
        budget = params.get("thinking_budget")
        max_tokens = int(params.get("max_tokens", DEFAULT_MAX_TOKENS))
        body: dict[str, Any] = {
            "model": endpoint.model_id,
            "max_tokens": max_tokens + int(budget) if budget else max_tokens,
            "messages": [{"role": m.role, "content": m.content} for m in rest],
        }
        if system is not None:
            block: dict[str, Any] = {"type": "text", "text": system}
            if params.get("cache_prefix"):
                block["cache_control"] = {"type": "ephemeral"}
            body["system"] = [block]
        if budget:
            body["thinking"] = {"type": "enabled", "budget_tokens": int(budget)}
        else:
            for name in ("temperature", "top_p"):
                if name in params:
                    body[name] = params[name]
        if spec.response_schema is not None:
            body.update(anthropic_tool(spec.response_schema, thinking=bool(budget)))
        url = f"{endpoint.base_url.rstrip('/')}/v1/messages"
        return HttpCall(url=url, json=body, headers={"anthropic-version": API_VERSION})

    def build_embed(self, endpoint: Endpoint, spec: CallSpec) -> HttpCall:
        raise ProviderError(
            "client", f"model {spec.model}: Anthropic has no embeddings API; use an openai or gemini model"
        )

    def auth_headers(self, api_key: str) -> dict[str, str]:
        return {"x-api-key": api_key}

    def parse_chat(self, body: bytes) -> ParsedResponse:
        wire = self.validate(_Message, body)
        text = answer_text(wire.content)
        thinking = "".join(b.thinking or "" for b in wire.content if b.type == "thinking")
        finish = _FINISH.get(wire.stop_reason or "", "other")
        usage = wire.usage
        read = usage.cache_read_input_tokens or 0
        write = usage.cache_creation_input_tokens or 0
        return ParsedResponse(
            text=text,
            thinking=thinking,
            finish_reason=finish,
            refusal=finish == "refusal",
            input_tokens=usage.input_tokens + read + write,
            output_tokens=usage.output_tokens,
            cached_input_tokens=read,
            cache_write_tokens=write,
            flag=finish_flag(text, finish),
        )

    def parse_embed(self, body: bytes) -> ParsedResponse:
        raise ValueError("Anthropic has no embeddings API")

    def rate_limits(self, headers: Mapping[str, str]) -> RateLimitInfo | None:
        return anthropic_rate_limits(lower_keys(headers))
