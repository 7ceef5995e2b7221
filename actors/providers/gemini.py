"""Gemini `generateContent`, with thinking and implicit-cache usage.

https://ai.google.dev/api/generate-content. Gemini bills thoughts as output, so neutral
`output_tokens` is candidates plus thoughts. A 429 carries its wait in the body as a
`google.rpc.RetryInfo` detail rather than in a header. The pydantic models below use
the camelCase wire names as field names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from actors.providers.base import Adapter, WireModel, finish_flag, split_system
from actors.providers.embeddings import build_gemini_embed, parse_gemini_embed
from actors.providers.headers import parse_duration_s
from actors.providers.structured import gemini_openapi
from actors.types import CallSpec, Endpoint, FinishReason, HttpCall, ParsedResponse

RETRY_INFO_TYPE = "type.googleapis.com/google.rpc.RetryInfo"
_FILTERED = frozenset({"SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "RECITATION", "IMAGE_SAFETY"})
_DECLINED = _FILTERED - {"RECITATION"}
"""Filter reasons that mean the model would not answer, as opposed to quoting too much."""


class _Part(WireModel):
    text: str | None = None
    thought: bool = False


class _Content(WireModel):
    parts: tuple[_Part, ...] = ()


class _Candidate(WireModel):
    content: _Content = _Content()
    finishReason: str | None = None


class _Feedback(WireModel):
    blockReason: str | None = None


class _Usage(WireModel):
    promptTokenCount: int = 0
    candidatesTokenCount: int = 0
    cachedContentTokenCount: int = 0
    thoughtsTokenCount: int = 0


class _Response(WireModel):
    candidates: tuple[_Candidate, ...] = ()
    promptFeedback: _Feedback | None = None
    usageMetadata: _Usage


def _finish(reason: str | None) -> FinishReason:
    if reason == "STOP":
        return "stop"
    if reason == "MAX_TOKENS":
        return "length"
    if reason in _FILTERED:
        return "content_filter"
    return "other"


class GeminiAdapter(Adapter):
    """POST {base_url}/v1beta/models/{model_id}:generateContent."""

    provider = "gemini"

    def build_chat(self, endpoint: Endpoint, spec: CallSpec) -> HttpCall:
        params = spec.param_dict
        system, rest = split_system(spec.messages)
        body: dict[str, Any] = {
            "contents": [
                {"role": "model" if m.role == "assistant" else "user", "parts": [{"text": m.content}]}
                for m in rest
            ]
        }
        if system is not None:
            body["systemInstruction"] = {"parts": [{"text": system}]}
        config: dict[str, Any] = {}
        for neutral, wire in (
            ("temperature", "temperature"),
            ("top_p", "topP"),
            ("max_tokens", "maxOutputTokens"),
        ):
            if neutral in params:
                config[wire] = params[neutral]
        if "thinking_budget" in params:
            budget = int(params["thinking_budget"])
            config["thinkingConfig"] = {"thinkingBudget": budget, "includeThoughts": budget != 0}
        if spec.response_schema is not None:
            config["responseMimeType"] = "application/json"
            config["responseSchema"] = gemini_openapi(spec.response_schema["schema"])
        if config:
            body["generationConfig"] = config
        url = f"{endpoint.base_url.rstrip('/')}/v1beta/models/{endpoint.model_id}:generateContent"
        return HttpCall(url=url, json=body)

    def build_embed(self, endpoint: Endpoint, spec: CallSpec) -> HttpCall:
        return build_gemini_embed(endpoint, spec)

    def auth_headers(self, api_key: str) -> dict[str, str]:
        return {"x-goog-api-key": api_key}

    def parse_chat(self, body: bytes) -> ParsedResponse:
        wire = self.validate(_Response, body)
        usage = wire.usageMetadata
        common = {
            "input_tokens": usage.promptTokenCount,
            "output_tokens": usage.candidatesTokenCount + usage.thoughtsTokenCount,
            "cached_input_tokens": usage.cachedContentTokenCount,
            "reasoning_tokens": usage.thoughtsTokenCount,
        }
        if not wire.candidates:
            if wire.promptFeedback is None or wire.promptFeedback.blockReason is None:
                raise ValueError("no candidates and no promptFeedback.blockReason")
            return ParsedResponse(finish_reason="content_filter", refusal=True, **common)
        candidate = wire.candidates[0]
        parts = candidate.content.parts
        text = "".join(p.text or "" for p in parts if not p.thought)
        thinking = "".join(p.text or "" for p in parts if p.thought)
        finish = _finish(candidate.finishReason)
        return ParsedResponse(
            text=text,
            thinking=thinking,
            finish_reason=finish,
            refusal=candidate.finishReason in _DECLINED,
            flag=finish_flag(text, finish),
            **common,
        )

    def parse_embed(self, body: bytes) -> ParsedResponse:
        return parse_gemini_embed(body)

    def retry_after_from_body(self, error: Mapping[str, Any]) -> float | None:
        """The `retryDelay` of a `RetryInfo` detail, a protobuf duration such as "37s"."""
        details = error.get("details")
        if not isinstance(details, list):
            return None
        for detail in details:
            if isinstance(detail, dict) and detail.get("@type") == RETRY_INFO_TYPE:
                delay = detail.get("retryDelay")
                if isinstance(delay, str):
                    return parse_duration_s(delay)
        return None
