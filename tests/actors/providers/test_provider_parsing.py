"""Adapters on canned bytes: error classification, retry-after, malformed bodies, rate-limit headers."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from actors.errors import ProviderError
from actors.providers.base import RAW_LIMIT_BYTES, get_adapter
from actors.providers.headers import (
    anthropic_rate_limits,
    openai_rate_limits,
    parse_duration_s,
    parse_retry_after_s,
    parse_rfc3339_from_now_s,
)
from actors.types import CallSpec, Endpoint, Message, RateLimitInfo

SPEC = CallSpec("judge-model", messages=(Message("user", "hi"),))


def failure(provider: str, status: int, body: object, headers: dict[str, str] | None = None) -> ProviderError:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    with pytest.raises(ProviderError) as err:
        get_adapter(provider).parse(SPEC, status, headers or {}, raw)
    return err.value


def openai_error(kind: str, code: str | None = None) -> dict[str, object]:
    return {"error": {"message": "nope", "type": kind, "param": None, "code": code}}


def anthropic_error(kind: str) -> dict[str, object]:
    return {"type": "error", "error": {"type": kind, "message": "nope"}}


def gemini_error(code: int, status: str, details: list[object] | None = None) -> dict[str, object]:
    return {"error": {"code": code, "message": "nope", "status": status, "details": details or []}}


@pytest.mark.parametrize(
    ("provider", "status", "body", "kind"),
    [
        ("openai", 429, openai_error("requests", "rate_limit_exceeded"), "rate_limit"),
        ("openai", 500, openai_error("server_error"), "server"),
        ("openai", 503, openai_error("server_error"), "overloaded"),
        ("openai", 401, openai_error("invalid_request_error", "invalid_api_key"), "auth"),
        ("openai", 400, openai_error("invalid_request_error"), "client"),
        ("anthropic", 529, anthropic_error("overloaded_error"), "overloaded"),
        ("anthropic", 429, anthropic_error("rate_limit_error"), "rate_limit"),
        ("anthropic", 403, anthropic_error("permission_error"), "auth"),
        ("anthropic", 413, anthropic_error("request_too_large"), "client"),
        ("anthropic", 500, anthropic_error("api_error"), "server"),
        ("gemini", 503, gemini_error(503, "UNAVAILABLE"), "overloaded"),
        ("gemini", 500, gemini_error(500, "INTERNAL"), "server"),
        ("gemini", 404, gemini_error(404, "NOT_FOUND"), "client"),
        ("gemini", 502, b"<html>Bad gateway</html>", "server"),
    ],
)
def test_error_kinds(provider: str, status: int, body: object, kind: str) -> None:
    err = failure(provider, status, body)
    assert (err.kind, err.status) == (kind, status)
    assert err.raw is not None and "judge-model" in str(err)


def test_retry_after_sources() -> None:
    assert failure("openai", 429, openai_error("tokens"), {"retry-after-ms": "1500"}).retry_after_s == 1.5
    assert (
        failure("anthropic", 429, anthropic_error("rate_limit_error"), {"Retry-After": "7"}).retry_after_s
        == 7
    )
    details = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}]
    assert failure("gemini", 429, gemini_error(429, "RESOURCE_EXHAUSTED", details)).retry_after_s == 37
    assert failure("gemini", 429, gemini_error(429, "RESOURCE_EXHAUSTED")).retry_after_s is None


def test_retry_after_http_date() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    header = format_datetime(datetime(2025, 1, 1, 12, 0, 30, tzinfo=UTC), usegmt=True)
    assert parse_retry_after_s({"retry-after": header}, now=now.timestamp()) == 30
    assert parse_retry_after_s({"retry-after": "soon"}) is None


def test_error_message_never_carries_headers() -> None:
    err = failure("openai", 401, openai_error("invalid_request_error"), {"authorization": "Bearer sk-secret"})
    assert "sk-secret" not in str(err) and "sk-secret" not in (err.raw or "")


GOOD_OPENAI = {
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello."}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 2},
}


@pytest.mark.parametrize(
    "body",
    [
        b'{"choices": [',  # truncated
        b"not json at all",
        json.dumps({"choices": [], "usage": {}}).encode(),  # no choice
        json.dumps({"choices": [{"message": {"content": "x"}}]}).encode(),  # no usage
        json.dumps(GOOD_OPENAI).encode()[:40],
    ],
)
def test_bad_2xx_is_malformed_and_kept(body: bytes) -> None:
    err = failure("openai", 200, body)
    assert err.kind == "malformed" and err.retryable
    assert err.raw == body.decode()


def test_raw_is_capped() -> None:
    err = failure("anthropic", 200, b"x" * (RAW_LIMIT_BYTES * 2))
    assert err.raw is not None and len(err.raw) == RAW_LIMIT_BYTES


def test_openai_refusal_and_finish_mapping() -> None:
    refusal = {
        **GOOD_OPENAI,
        "choices": [{"message": {"content": None, "refusal": "I can't."}, "finish_reason": "stop"}],
    }
    got = get_adapter("openai").parse(SPEC, 200, {}, json.dumps(refusal).encode())
    assert (got.text, got.refusal, got.finish_reason, got.flag) == ("I can't.", True, "refusal", None)
    filtered = {**GOOD_OPENAI, "choices": [{"message": {"content": ""}, "finish_reason": "content_filter"}]}
    assert (
        get_adapter("openai").parse(SPEC, 200, {}, json.dumps(filtered).encode()).finish_reason
        == "content_filter"
    )
    empty = {**GOOD_OPENAI, "choices": [{"message": {"content": "  "}, "finish_reason": "stop"}]}
    assert get_adapter("openai").parse(SPEC, 200, {}, json.dumps(empty).encode()).flag == "empty"


def test_anthropic_usage_adds_cache_tokens() -> None:
    body = {
        "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "s"},
            {"type": "text", "text": "Yes."},
        ],
        "stop_reason": "end_turn",
        "usage": {
            "input_tokens": 10,
            "output_tokens": 3,
            "cache_read_input_tokens": 1000,
            "cache_creation_input_tokens": 24,
        },
    }
    got = get_adapter("anthropic").parse(SPEC, 200, {}, json.dumps(body).encode())
    assert (got.input_tokens, got.cached_input_tokens, got.cache_write_tokens) == (1034, 1000, 24)
    assert (got.text, got.thinking) == ("Yes.", "hmm")


def test_gemini_blocked_prompt_is_refusal() -> None:
    body = {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 9}}
    got = get_adapter("gemini").parse(SPEC, 200, {}, json.dumps(body).encode())
    assert (got.refusal, got.finish_reason, got.input_tokens) == (True, "content_filter", 9)


def test_gemini_recitation_is_filter_not_refusal() -> None:
    body = {
        "candidates": [{"content": {"parts": [{"text": "partial"}]}, "finishReason": "RECITATION"}],
        "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 1},
    }
    got = get_adapter("gemini").parse(SPEC, 200, {}, json.dumps(body).encode())
    assert (got.refusal, got.finish_reason) == (False, "content_filter")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("6m0s", 360.0),
        ("1.5s", 1.5),
        ("20ms", 0.02),
        ("1h2m3s", 3723.0),
        ("0s", 0.0),
        ("12", 12.0),
        ("abc", None),
    ],
)
def test_durations(text: str, seconds: float | None) -> None:
    got = parse_duration_s(text)
    assert got == pytest.approx(seconds) if seconds is not None else got is None


def test_openai_rate_limit_headers() -> None:
    headers = {
        "x-ratelimit-limit-requests": "500",
        "x-ratelimit-remaining-requests": "499",
        "x-ratelimit-reset-requests": "120ms",
        "x-ratelimit-limit-tokens": "30000",
        "x-ratelimit-remaining-tokens": "29000",
        "x-ratelimit-reset-tokens": "2s",
    }
    info = openai_rate_limits(headers)
    assert info == RateLimitInfo(500, 499, 0.12, 30000, 29000, 2.0)
    assert get_adapter("openai").rate_limits({k.upper(): v for k, v in headers.items()}) == info
    assert get_adapter("openai").rate_limits({}) is None


def test_anthropic_rate_limit_headers() -> None:
    now = datetime(2025, 6, 1, 0, 0, 0, tzinfo=UTC).timestamp()
    headers = {
        "anthropic-ratelimit-requests-limit": "50",
        "anthropic-ratelimit-requests-remaining": "49",
        "anthropic-ratelimit-requests-reset": "2025-06-01T00:00:01Z",
        "anthropic-ratelimit-input-tokens-limit": "40000",
        "anthropic-ratelimit-input-tokens-remaining": "39000",
        "anthropic-ratelimit-input-tokens-reset": "2025-06-01T00:00:30+00:00",
        "anthropic-ratelimit-output-tokens-limit": "8000",
        "anthropic-ratelimit-output-tokens-remaining": "7000",
        "anthropic-ratelimit-output-tokens-reset": "2025-05-31T23:59:00Z",
    }
    info = anthropic_rate_limits(headers, now=now)
    assert info == RateLimitInfo(50, 49, 1.0, 40000, 39000, 30.0, 8000, 7000, 0.0)
    assert parse_rfc3339_from_now_s("yesterday") is None


def test_build_shapes() -> None:
    ep = Endpoint("m", "anthropic", "claude-x", "http://h/", "K", "a")
    spec = CallSpec(
        "m",
        messages=(Message("system", "Rules."), Message("user", "Q")),
        params=(("cache_prefix", True), ("max_tokens", 100), ("temperature", 0.2), ("thinking_budget", 2000)),
    )
    call = get_adapter("anthropic").build(ep, spec)
    assert call.url == "http://h/v1/messages" and call.headers == {"anthropic-version": "2023-06-01"}
    assert call.json["system"] == [{"type": "text", "text": "Rules.", "cache_control": {"type": "ephemeral"}}]
    assert call.json["max_tokens"] == 2100 and "temperature" not in call.json
    assert call.json["thinking"] == {"type": "enabled", "budget_tokens": 2000}

    oa = Endpoint("m", "openai", "gpt-4o", "http://h/v1", "K", "a")
    plain = get_adapter("openai").build(
        oa, CallSpec("m", messages=spec.messages, params=(("max_tokens", 9),))
    )
    assert plain.json["max_tokens"] == 9 and plain.url == "http://h/v1/chat/completions"
    o3 = Endpoint("m", "openai", "o3", "http://h/v1", "K", "a")
    reasoning = get_adapter("openai").build(
        o3, CallSpec("m", messages=spec.messages, params=(("max_tokens", 9),))
    )
    assert reasoning.json["max_completion_tokens"] == 9 and "max_tokens" not in reasoning.json

    gm = Endpoint("m", "gemini", "gemini-2.5-pro", "http://h", "K", "a")
    built = get_adapter("gemini").build(gm, spec)
    assert built.url == "http://h/v1beta/models/gemini-2.5-pro:generateContent"
    assert built.json["systemInstruction"] == {"parts": [{"text": "Rules."}]}
    assert built.json["generationConfig"]["thinkingConfig"] == {
        "thinkingBudget": 2000,
        "includeThoughts": True,
    }


def test_unknown_param_is_client_error() -> None:
    ep = Endpoint("m", "openai", "gpt-4o", "http://h/v1", "K", "a")
    with pytest.raises(ProviderError) as err:
        get_adapter("openai").build(
            ep, CallSpec("m", messages=(Message("user", "x"),), params=(("topp", 1),))
        )
    assert err.value.kind == "client" and "topp" in str(err.value)


def test_auth_headers() -> None:
    assert get_adapter("openai").auth_headers("k") == {"Authorization": "Bearer k"}
    assert get_adapter("anthropic").auth_headers("k") == {"x-api-key": "k"}
    assert get_adapter("gemini").auth_headers("k") == {"x-goog-api-key": "k"}
    with pytest.raises(ValueError, match="unknown provider"):
        get_adapter("cohere")
