"""Gemini generateContent and batchEmbedContents, as the emulator speaks them.

Shapes follow https://ai.google.dev/api/generate-content and the google.rpc error
model: a 429 is RESOURCE_EXHAUSTED with a `RetryInfo` detail and no rate-limit headers, and a
request without a key a 403 PERMISSION_DENIED, as the API answers "unregistered callers".
A declined answer is a candidate with `finishReason: SAFETY` and no content. Thoughts
are billed in `thoughtsTokenCount`, apart from `candidatesTokenCount`. Requests are
protobuf JSON, which accepts each field by its lowerCamelCase or its snake_case name;
google-genai sends both (`generationConfig` with `thinking_budget` inside).
"""

from __future__ import annotations

import math
from typing import Any

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
    dimensions,
    require,
    text_of,
)
from actors.emulator.dialects.structured import gemini_schema
from actors.emulator.personas import EmulatedRequest

_ERRORS: dict[ErrorShape, tuple[int, str]] = {
    "auth": (403, "PERMISSION_DENIED"),  # a request without a key ("unregistered callers")
    "invalid": (400, "INVALID_ARGUMENT"),
    "not_found": (404, "NOT_FOUND"),
    "server": (500, "INTERNAL"),
    "overloaded": (503, "UNAVAILABLE"),
}


def proto_field(message: JSON, name: str, default: Any = None) -> Any:
    """A protobuf JSON field by its snake_case `name` or its lowerCamelCase one."""
    head, *rest = name.split("_")
    camel = head + "".join(word.capitalize() for word in rest)
    return message.get(camel, message.get(name, default))


def _parts_text(content: object) -> str:
    if not isinstance(content, dict):
        raise WireError("a content must be an object with 'parts'")
    return text_of(content.get("parts", []))


class GeminiDialect(Dialect):
    name = "gemini"

    def api_key(self, request: web.Request) -> str | None:
        return (request.headers.get("x-goog-api-key") or request.query.get("key") or "").strip() or None

    def parse_chat(self, body: JSON, model: str | None) -> ChatInput:
        if not model:
            raise WireError("the model is named in the path")
        instruction = proto_field(body, "system_instruction")
        system = "" if instruction is None else _parts_text(instruction)
        messages: list[tuple[str, str]] = []
        for content in require(body, "contents", list):
            role = content.get("role", "user") if isinstance(content, dict) else None
            if role not in ("user", "model"):
                raise WireError("contents: role must be user or model")
            messages.append(("assistant" if role == "model" else "user", _parts_text(content)))
        config = proto_field(body, "generation_config") or {}
        thinking_config = proto_field(config, "thinking_config") or {}
        request = EmulatedRequest(
            model_id=model,
            system=system,
            messages=tuple(messages),
            max_tokens=proto_field(config, "max_output_tokens"),
            temperature=config.get("temperature"),
            thinking=proto_field(thinking_config, "thinking_budget", 0) != 0,
            schema=gemini_schema(config, proto_field),
        )
        texts = ((system,) if system else ()) + tuple(text for _, text in messages)
        return ChatInput(request, texts, show_thinking=bool(proto_field(thinking_config, "include_thoughts")))

    def parse_embed(self, body: JSON, model: str | None) -> EmbedInput:
        requests = require(body, "requests", list)
        if not requests or not all(isinstance(r, dict) for r in requests):
            raise WireError("'requests' must be a non-empty list")
        if not model or any(r.get("model") != f"models/{model}" for r in requests):
            raise WireError("each request's model must match the model in the path")
        sizes = {proto_field(r, "output_dimensionality") for r in requests}
        if len(sizes) > 1:
            raise WireError("the requests of one batch must ask for one outputDimensionality")
        return EmbedInput(
            model, tuple(_parts_text(r.get("content")) for r in requests), dimensions(sizes.pop())
        )

    def error(self, shape: ErrorShape, message: str) -> tuple[int, JSON]:
        status, code = _ERRORS[shape]
        return status, {"error": {"code": status, "message": message, "status": code}}

    def rate_limited(
        self, refusal: Refusal, views: dict[LimitName, BucketView]
    ) -> tuple[JSON, dict[str, str]]:
        delay = max(math.ceil(refusal.retry_after_s), 1)
        error = {
            "code": 429,
            "message": "Resource has been exhausted (e.g. check quota).",
            "status": "RESOURCE_EXHAUSTED",
            "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{delay}s"}],
        }
        return {"error": error}, {}

    def chat_body(self, model_id: str, out: ChatOutput) -> JSON:
        candidate: JSON = {"index": 0}
        if out.finish == "refusal":
            candidate["finishReason"] = "SAFETY"
            text_tokens = 0
        else:
            parts: list[JSON] = [{"text": out.thinking, "thought": True}] if out.thinking else []
            parts.append({"text": out.text})
            candidate["content"] = {"role": "model", "parts": parts}
            candidate["finishReason"] = "MAX_TOKENS" if out.finish == "length" else "STOP"
            text_tokens = out.text_tokens
        usage: JSON = {
            "promptTokenCount": out.input_tokens,
            "candidatesTokenCount": text_tokens,
            "totalTokenCount": out.input_tokens + text_tokens + out.thinking_tokens,
        }
        if out.cache.read:
            usage["cachedContentTokenCount"] = out.cache.read
        if out.thinking_tokens:
            usage["thoughtsTokenCount"] = out.thinking_tokens
        return {
            "candidates": [candidate],
            "usageMetadata": usage,
            "modelVersion": model_id,
            "responseId": out.response_id,
        }

    def embed_body(self, request: EmbedInput, vectors: list[list[float]]) -> JSON:
        return {"embeddings": [{"values": v} for v in vectors]}
