"""OpenAI chat completions, also spoken by xAI, vLLM, llama.cpp and other compatible servers.

Reasoning models (o1, o3, o4-mini, gpt-5...) take `max_completion_tokens` and reject
sampling parameters, see
https://platform.openai.com/docs/guides/reasoning; other models take `max_tokens`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from actors.providers.base import Adapter, WireModel, finish_flag
from actors.providers.embeddings import build_openai_embed, parse_openai_embed
from actors.providers.headers import lower_keys, openai_rate_limits
from actors.providers.structured import openai_response_format
from actors.types import CallSpec, Endpoint, FinishReason, HttpCall, ParsedResponse, RateLimitInfo

_REASONING_MODEL = re.compile(r"^(?:.*/)?(?:o\d|gpt-5)")
_FINISH: dict[str, FinishReason] = {"stop": "stop", "length": "length", "content_filter": "content_filter"}


def is_reasoning_model(model_id: str) -> bool:
    """Whether a model id names an OpenAI reasoning model (o1, o3, o4*, gpt-5*), by its prefix."""
    return bool(_REASONING_MODEL.match(model_id))


class _Message(WireModel):
    content: str | None = None
    refusal: str | None = None


class _Choice(WireModel):
    message: _Message
    finish_reason: str | None = None


class _PromptDetails(WireModel):
    cached_tokens: int = 0


class _CompletionDetails(WireModel):
    reasoning_tokens: int = 0


class _Usage(WireModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    prompt_tokens_details: _PromptDetails | None = None
    completion_tokens_details: _CompletionDetails | None = None


class _Completion(WireModel):
    choices: list[_Choice]
    usage: _Usage


class OpenAIAdapter(Adapter):
    """POST {base_url}/chat/completions; base_url carries the version path (".../v1")."""

    provider = "openai"

    def build_chat(self, endpoint: Endpoint, spec: CallSpec) -> HttpCall:
        params = spec.param_dict
        reasoning = "reasoning_effort" in params or is_reasoning_model(endpoint.model_id)
        body: dict[str, Any] = {
            "model": endpoint.model_id,
            "messages": [{"role": m.role, "content": m.content} for m in spec.messages],
        }
        if not reasoning:
            for name in ("temperature", "top_p"):
                if name in params:
                    body[name] = params[name]
        if "max_tokens" in params:
            body["max_completion_tokens" if reasoning else "max_tokens"] = params["max_tokens"]
        if "reasoning_effort" in params:
            body["reasoning_effort"] = params["reasoning_effort"]
        if spec.response_schema is not None:
            body["response_format"] = openai_response_format(
                spec.response_schema, params.get("schema_format", "json_schema")
            )
        return HttpCall(url=f"{endpoint.base_url.rstrip('/')}/chat/completions", json=body)

    def build_embed(self, endpoint: Endpoint, spec: CallSpec) -> HttpCall:
        return build_openai_embed(endpoint, spec)

    def auth_headers(self, api_key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {api_key}"}

    def parse_chat(self, body: bytes) -> ParsedResponse:
        wire = self.validate(_Completion, body)
        choice = wire.choices[0]
        refusal = choice.message.refusal is not None
        finish: FinishReason = "refusal" if refusal else _FINISH.get(choice.finish_reason or "", "other")
        text = choice.message.refusal if refusal else choice.message.content
        text = text or ""
        usage = wire.usage
        return ParsedResponse(
            text=text,
            finish_reason=finish,
            refusal=refusal,
            input_tokens=usage.prompt_tokens,
            output_tokens=usage.completion_tokens,
            cached_input_tokens=usage.prompt_tokens_details.cached_tokens
            if usage.prompt_tokens_details
            else 0,
            reasoning_tokens=(
                usage.completion_tokens_details.reasoning_tokens if usage.completion_tokens_details else 0
            ),
            flag=finish_flag(text, finish),
        )

    def parse_embed(self, body: bytes) -> ParsedResponse:
        return parse_openai_embed(body)

    def rate_limits(self, headers: Mapping[str, str]) -> RateLimitInfo | None:
        return openai_rate_limits(lower_keys(headers))
