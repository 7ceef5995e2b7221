"""Pure parsers for the HTTP headers providers use to talk about time and limits.

Kept apart from the adapters so the client, the limiter and the tests can use them
without a wire format. Every parser returns None for what it cannot read: a malformed
header must never fail a call that otherwise succeeded.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime

from actors.types import RateLimitInfo

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|h|m|s)")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def lower_keys(headers: Mapping[str, str]) -> dict[str, str]:
    """Headers with lower-case names, so plain dicts behave like aiohttp's case-insensitive ones."""
    return {k.lower(): v for k, v in headers.items()}


def parse_duration_s(text: str) -> float | None:
    """Seconds in a Go-style duration ("6m0s", "1.5s", "20ms", "1h2m") or a bare number of seconds."""
    text = text.strip()
    if not text:
        return None
    try:
        return max(float(text), 0.0)
    except ValueError:
        pass
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(num + unit for num, unit in parts) != text:
        return None
    return sum(float(num) * _UNIT_S[unit] for num, unit in parts)


def parse_rfc3339_from_now_s(text: str, now: float | None = None) -> float | None:
    """Seconds from now until an RFC 3339 time (Anthropic's reset headers); never negative."""
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        return None
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)


def parse_retry_after_s(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """The wait a provider asks for: `retry-after-ms`, else `retry-after` as seconds or an HTTP date.

    Args:
        headers: response headers with lower-case names (see `lower_keys`).
        now: the current Unix time, for tests; defaults to the clock.
    """
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return max(float(ms) / 1000.0, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)


def _number(headers: Mapping[str, str], name: str) -> float | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _duration(headers: Mapping[str, str], name: str) -> float | None:
    value = headers.get(name)
    return None if value is None else parse_duration_s(value)


def openai_rate_limits(headers: Mapping[str, str]) -> RateLimitInfo | None:
    """OpenAI's `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`; its tokens are input tokens."""
    info = RateLimitInfo(
        limit_requests=_number(headers, "x-ratelimit-limit-requests"),
        remaining_requests=_number(headers, "x-ratelimit-remaining-requests"),
        reset_requests_s=_duration(headers, "x-ratelimit-reset-requests"),
        limit_input_tokens=_number(headers, "x-ratelimit-limit-tokens"),
        remaining_input_tokens=_number(headers, "x-ratelimit-remaining-tokens"),
        reset_input_tokens_s=_duration(headers, "x-ratelimit-reset-tokens"),
    )
    return None if info == RateLimitInfo() else info


def anthropic_rate_limits(headers: Mapping[str, str], now: float | None = None) -> RateLimitInfo | None:
    """Anthropic's `anthropic-ratelimit-{requests,input-tokens,output-tokens}-{limit,remaining,reset}`."""

    def reset(name: str) -> float | None:
        value = headers.get(f"anthropic-ratelimit-{name}-reset")
        return None if value is None else parse_rfc3339_from_now_s(value, now)

    def num(name: str, field: str) -> float | None:
        return _number(headers, f"anthropic-ratelimit-{name}-{field}")

    info = RateLimitInfo(
        limit_requests=num("requests", "limit"),
        remaining_requests=num("requests", "remaining"),
        reset_requests_s=reset("requests"),
        limit_input_tokens=num("input-tokens", "limit"),
        remaining_input_tokens=num("input-tokens", "remaining"),
        reset_input_tokens_s=reset("input-tokens"),
        limit_output_tokens=num("output-tokens", "limit"),
        remaining_output_tokens=num("output-tokens", "remaining"),
        reset_output_tokens_s=reset("output-tokens"),
    )
    return None if info == RateLimitInfo() else info
