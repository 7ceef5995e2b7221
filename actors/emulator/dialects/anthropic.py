"""Anthropic messages, as the emulator speaks it.

Shapes follow https://docs.anthropic.com/en/api/messages and
https://docs.anthropic.com/en/api/rate-limits (`anthropic-ratelimit-*` headers with
RFC 3339 resets, `retry-after` on 429). Overload is HTTP 529 `overloaded_error`. Only
explicit prompt caching exists: the system blocks up to the last `cache_control`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from datetime import UTC, datetime, timedelta

from aiohttp import web

from actors.emulator.accounts import BucketView, LimitName, Refusal
from actors.emulator.dialects.base import (
    JSON,
    ChatInput,
    ChatOutput,
    Dialect,
    EmbedInput,
    ErrorShape,
    WireError,
    require,
    text_of,
)
from actors.emulator.dialects.structured import anthropic_tool
from actors.emulator.personas import EmulatedRequest

_ERRORS: dict[ErrorShape, tuple[int, str]] = {
    "auth": (401, "authentication_error"),
    "invalid": (400, "invalid_request_error"),
    "not_found": (404, "not_found_error"),
    "server": (500, "api_error"),
    "overloaded": (529, "overloaded_error"),
}
_HEADER_NAMES: dict[LimitName, str] = {
    "requests": "requests",
    "input_tokens": "input-tokens",
    "output_tokens": "output-tokens",
}


def _system(raw: object) -> tuple[str, str | None]:
    """The system text and the text of its cache-marked prefix, if a block carries `cache_control`."""
    if raw is None:
        return "", None
    if isinstance(raw, str):
        return raw, None
    if not isinstance(raw, list) or not all(isinstance(b, dict) and b.get("type") == "text" for b in raw):
        raise WireError("'system' must be a string or a list of text blocks")
    texts = [str(b.get("text", "")) for b in raw]
    marked = [i for i, b in enumerate(raw) if b.get("cache_control")]
    prefix = "".join(texts[: marked[-1] + 1]) if marked else None
    return "".join(texts), prefix


def _tool_input(out: ChatOutput) -> JSON | None:
    """The forced tool's input: the answer's JSON object (an answer cut off before it closes, or
    a refusal, goes back as text)."""
    if out.tool is None or out.finish == "refusal":
        return None
    try:
        called = json.loads(out.text)
    except ValueError:
        return None
    return called if isinstance(called, dict) else None


class AnthropicDialect(Dialect):
    name = "anthropic"
    cache_style = "explicit"

    def api_key(self, request: web.Request) -> str | None:
        """The `x-api-key` header, else an `Authorization: Bearer` key (the official SDK's choice)."""
        key = request.headers.get("x-api-key", "").strip()
        scheme, _, bearer = request.headers.get("Authorization", "").partition(" ")
        return key or (bearer.strip() if scheme.lower() == "bearer" else "") or None

    def parse_chat(self, body: JSON, model: str | None) -> ChatInput:
        model_id = require(body, "model", str)
        max_tokens = require(body, "max_tokens", int)
        system, prefix = _system(body.get("system"))
        messages: list[tuple[str, str]] = []
        for m in require(body, "messages", list):
            if not isinstance(m, dict) or m.get("role") not in ("user", "assistant"):
                raise WireError(
                    "messages: roles must be user or assistant; put the system prompt in 'system'"
                )
            messages.append((m["role"], text_of(m.get("content", ""))))
        thinking = body.get("thinking") or {}
        enabled = isinstance(thinking, dict) and thinking.get("type") == "enabled"
        if enabled:
            budget = thinking.get("budget_tokens")
            if not isinstance(budget, int) or budget >= max_tokens:
                raise WireError("thinking.budget_tokens must be an integer below max_tokens")
            if body.get("temperature", 1) != 1:
                raise WireError("temperature may only be set to 1 when thinking is enabled")
        tool = anthropic_tool(body, enabled)
        request = EmulatedRequest(
            model_id=model_id,
            system=system,
            messages=tuple(messages),
            max_tokens=max_tokens,
            temperature=body.get("temperature"),
            thinking=enabled,
            schema=tool[1] if tool else None,
        )
        texts = ((system,) if system else ()) + tuple(text for _, text in messages)
        return ChatInput(
            request, texts, cache_prefix=prefix, show_thinking=enabled, answer_tool=tool[0] if tool else None
        )

    def parse_embed(self, body: JSON, model: str | None) -> EmbedInput:
        raise WireError("Anthropic has no embeddings endpoint")

    def error(self, shape: ErrorShape, message: str) -> tuple[int, JSON]:
        status, kind = _ERRORS[shape]
        return status, {"type": "error", "error": {"type": kind, "message": message}}

    def rate_limited(
        self, refusal: Refusal, views: dict[LimitName, BucketView]
    ) -> tuple[JSON, dict[str, str]]:
        limit = _HEADER_NAMES[refusal.limit].replace("-", " ")
        message = f"This request would exceed your organization's rate limit of {limit} per minute."
        headers = self.limit_headers(views)
        headers["retry-after"] = str(max(math.ceil(refusal.retry_after_s), 1))
        return {"type": "error", "error": {"type": "rate_limit_error", "message": message}}, headers

    def limit_headers(self, views: dict[LimitName, BucketView]) -> dict[str, str]:
        now = datetime.now(UTC)
        headers: dict[str, str] = {}
        for name, view in views.items():
            prefix = f"anthropic-ratelimit-{_HEADER_NAMES[name]}"
            reset = (now + timedelta(seconds=view.reset_s)).isoformat(timespec="seconds")
            headers[f"{prefix}-limit"] = str(int(view.limit))
            headers[f"{prefix}-remaining"] = str(int(view.remaining))
            headers[f"{prefix}-reset"] = reset.replace("+00:00", "Z")
        return headers

    def chat_body(self, model_id: str, out: ChatOutput) -> JSON:
        content: list[JSON] = []
        if out.thinking:
            signature = base64.b64encode(hashlib.sha256(out.thinking.encode()).digest()).decode()
            content.append({"type": "thinking", "thinking": out.thinking, "signature": signature})
        stop = {"stop": "end_turn", "length": "max_tokens", "refusal": "refusal"}[out.finish]
        called = _tool_input(out)
        if called is not None:
            content.append(
                {"type": "tool_use", "id": f"toolu_{out.response_id}", "name": out.tool, "input": called}
            )
            stop = "tool_use" if out.finish == "stop" else stop
        elif out.text:
            content.append({"type": "text", "text": out.text})
        return {
            "id": f"msg_{out.response_id}",
            "type": "message",
            "role": "assistant",
            "model": model_id,
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {
                "input_tokens": out.input_tokens - out.cache.read - out.cache.write,
                "cache_creation_input_tokens": out.cache.write,
                "cache_read_input_tokens": out.cache.read,
                "output_tokens": out.output_tokens,
            },
        }

    def embed_body(self, request: EmbedInput, vectors: list[list[float]]) -> JSON:
        raise WireError("Anthropic has no embeddings endpoint")
