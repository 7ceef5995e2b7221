"""OpenAI chat completions and embeddings, as the emulator speaks them.

Shapes follow https://platform.openai.com/docs/api-reference/chat and the rate-limit
headers of https://platform.openai.com/docs/guides/rate-limits (`x-ratelimit-*`, resets
as Go durations). OpenAI reports only request and (input) token limits in headers.
"""

from __future__ import annotations

import base64
import math
import struct
import time

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
from actors.emulator.dialects.structured import openai_schema
from actors.emulator.personas import EmulatedRequest
from actors.providers.openai_chat import is_reasoning_model

_ERRORS: dict[ErrorShape, tuple[int, str, str | None]] = {
    "auth": (401, "invalid_request_error", "invalid_api_key"),
    "invalid": (400, "invalid_request_error", None),
    "not_found": (404, "invalid_request_error", None),
    "server": (500, "server_error", None),
    "overloaded": (503, "server_error", None),
}


def go_duration(seconds: float) -> str:
    """Seconds as OpenAI writes them in reset headers: "20ms", "1.5s", "6m0s"."""
    if seconds < 1:
        return f"{math.ceil(seconds * 1000)}ms"
    minutes, rest = divmod(seconds, 60.0)
    rest_s = f"{round(rest, 3):g}s"
    return f"{int(minutes)}m{rest_s}" if minutes else rest_s


def _base64_float32(vector: list[float]) -> str:
    """A vector as `encoding_format: base64` returns it: little-endian float32 bytes, base64."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


class OpenAIDialect(Dialect):
    name = "openai"

    def api_key(self, request: web.Request) -> str | None:
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        return key.strip() or None if scheme.lower() == "bearer" else None

    def parse_chat(self, body: JSON, model: str | None) -> ChatInput:
        model_id = require(body, "model", str)
        system: list[str] = []
        messages: list[tuple[str, str]] = []
        for m in require(body, "messages", list):
            if not isinstance(m, dict) or m.get("role") not in ("system", "developer", "user", "assistant"):
                raise WireError("each message needs a role of system, developer, user or assistant")
            text = text_of(m.get("content", ""))
            if m["role"] in ("system", "developer"):
                system.append(text)
            else:
                messages.append((m["role"], text))
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
        request = EmulatedRequest(
            model_id=model_id,
            system="\n\n".join(system),
            messages=tuple(messages),
            max_tokens=max_tokens,
            temperature=body.get("temperature"),
            thinking="reasoning_effort" in body or is_reasoning_model(model_id),
            schema=openai_schema(body.get("response_format")),
        )
        return ChatInput(request, tuple(system) + tuple(text for _, text in messages))

    def parse_embed(self, body: JSON, model: str | None) -> EmbedInput:
        raw = body.get("input")
        texts = [raw] if isinstance(raw, str) else raw
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts) or not texts:
            raise WireError("'input' must be a string or a non-empty list of strings")
        encoding = body.get("encoding_format", "float")
        if encoding not in ("float", "base64"):
            raise WireError("'encoding_format' must be 'float' or 'base64'")
        return EmbedInput(
            require(body, "model", str),
            tuple(texts),
            dimensions(body.get("dimensions")),
            base64=encoding == "base64",
        )

    def error(self, shape: ErrorShape, message: str) -> tuple[int, JSON]:
        status, kind, code = _ERRORS[shape]
        return status, {"error": {"message": message, "type": kind, "param": None, "code": code}}

    def rate_limited(
        self, refusal: Refusal, views: dict[LimitName, BucketView]
    ) -> tuple[JSON, dict[str, str]]:
        kind = "requests" if refusal.limit == "requests" else "tokens"
        wait = refusal.retry_after_s
        message = f"Rate limit reached for {kind}. Please try again in {go_duration(wait)}."
        body = {"error": {"message": message, "type": kind, "param": None, "code": "rate_limit_exceeded"}}
        headers = self.limit_headers(views)
        headers["retry-after"] = str(max(math.ceil(wait), 1))
        headers["retry-after-ms"] = str(max(math.ceil(wait * 1000), 1))
        return body, headers

    def limit_headers(self, views: dict[LimitName, BucketView]) -> dict[str, str]:
        headers: dict[str, str] = {}
        for name, suffix in (("requests", "requests"), ("input_tokens", "tokens")):
            view = views.get(name)
            if view is not None:
                headers[f"x-ratelimit-limit-{suffix}"] = str(int(view.limit))
                headers[f"x-ratelimit-remaining-{suffix}"] = str(int(view.remaining))
                headers[f"x-ratelimit-reset-{suffix}"] = go_duration(view.reset_s)
        return headers

    def chat_body(self, model_id: str, out: ChatOutput) -> JSON:
        refused = out.finish == "refusal"
        message = {
            "role": "assistant",
            "content": None if refused else out.text,
            "refusal": out.text if refused else None,
            "annotations": [],
        }
        return {
            "id": f"chatcmpl-{out.response_id}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model_id,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": "length" if out.finish == "length" else "stop",
                }
            ],
            "usage": {
                "prompt_tokens": out.input_tokens,
                "completion_tokens": out.output_tokens,
                "total_tokens": out.input_tokens + out.output_tokens,
                "prompt_tokens_details": {"cached_tokens": out.cache.read, "audio_tokens": 0},
                "completion_tokens_details": {
                    "reasoning_tokens": out.thinking_tokens,
                    "audio_tokens": 0,
                    "accepted_prediction_tokens": 0,
                    "rejected_prediction_tokens": 0,
                },
            },
            "system_fingerprint": "fp_emulator",
        }

    def embed_body(self, request: EmbedInput, vectors: list[list[float]]) -> JSON:
        encode = _base64_float32 if request.base64 else list
        data = [{"object": "embedding", "index": i, "embedding": encode(v)} for i, v in enumerate(vectors)]
        tokens = request.input_tokens
        return {
            "object": "list",
            "data": data,
            "model": request.model_id,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
