"""The adapter contract: build a provider request, read its answer, classify its errors.

An adapter is stateless and pure: no I/O, no clock beyond header parsing, so the client
actor owns the session and the single retry loop, and tests can feed adapters canned
bytes. Shared wire logic (error classification, retry-after, finish flags, JSON
validation) lives here so the per-provider modules only describe their shapes.
"""

from __future__ import annotations

import importlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from actors.errors import ErrorKind, ProviderError
from actors.providers.headers import lower_keys, parse_retry_after_s
from actors.types import (
    NEUTRAL_PARAMS,
    CallSpec,
    Endpoint,
    FinishReason,
    HttpCall,
    Message,
    ParsedResponse,
    RateLimitInfo,
)

RAW_LIMIT_BYTES = 64 * 1024
"""How much of a failed body an error keeps; enough to debug, small enough for a Parquet row."""

W = TypeVar("W", bound="WireModel")


class WireModel(BaseModel):
    """Base of the pydantic views of provider JSON: unknown fields are ignored, as providers add them."""

    model_config = ConfigDict(extra="ignore", frozen=True)


def raw_text(body: bytes) -> str:
    """The body as text for `ProviderError.raw`, cut to `RAW_LIMIT_BYTES`."""
    return body[:RAW_LIMIT_BYTES].decode("utf-8", errors="replace")


def finish_flag(text: str, finish: FinishReason) -> str | None:
    """Why an answer that arrived is not usable as is: cut at max tokens, or nothing said."""
    if finish == "length":
        return "truncated"
    if finish == "stop" and not text.strip():
        return "empty"
    return None


def split_system(messages: tuple[Message, ...]) -> tuple[str | None, list[Message]]:
    """The system prompt (all system messages joined) and the rest of the conversation."""
    system = [m.content for m in messages if m.role == "system"]
    rest = [m for m in messages if m.role != "system"]
    return ("\n\n".join(system) if system else None), rest


QUOTA_CODES: frozenset[str] = frozenset(
    {
        # OpenAI: a 429 of type (or code) insufficient_quota, and the codes that name which limit.
        "insufficient_quota",
        "credit_balance_exhausted",
        "organization_spend_limit_exceeded",
        "project_spend_limit_exceeded",
        "organization_usage_limit_exceeded",
        # Anthropic: a 429 rate_limit_error whose `details.error_code` says the tier's monthly cap is reached.
        "enforced_spend_limit_reached",
    }
)
"""Error codes of a 429 that no wait fixes: the account's credit or spend cap is used up until someone
pays or the month turns, so retrying only burns attempts and slows the account's limiter."""

BAD_KEY_CODES: frozenset[str] = frozenset({"API_KEY_INVALID"})
"""Error codes that say the key is wrong although the status is not 401/403 (Gemini answers 400)."""

OVERLOADED_CODES: frozenset[str] = frozenset({"overloaded_error", "UNAVAILABLE"})
"""Error codes of a transient overload whatever the status: Anthropic's type, Gemini's status."""


def error_codes(error: Mapping[str, Any]) -> frozenset[str]:
    """Every string naming an error object's cause: its type, status and code, Anthropic's
    `details.error_code`, and the `reason` of Gemini's `google.rpc.ErrorInfo` details."""
    names = [error.get("type"), error.get("status"), error.get("code")]
    details = error.get("details")
    if isinstance(details, dict):
        names.append(details.get("error_code"))
    elif isinstance(details, list):
        names.extend(d.get("reason") for d in details if isinstance(d, dict))
    return frozenset(n for n in names if isinstance(n, str))


def status_kind(status: int, codes: frozenset[str]) -> ErrorKind:
    """Map a non-2xx status, and the body's error codes where they are decisive, to an `ErrorKind`."""
    if status == 402 or codes & QUOTA_CODES:
        return "quota"
    if status == 429:
        return "rate_limit"
    if status in (503, 529) or codes & OVERLOADED_CODES:
        return "overloaded"
    if status >= 500:
        return "server"
    if status in (401, 403) or codes & BAD_KEY_CODES:
        return "auth"
    return "client"


class Adapter(ABC):
    """One wire format: request building, response parsing and error classification."""

    provider: ClassVar[str]

    def build(self, endpoint: Endpoint, spec: CallSpec) -> HttpCall:
        """The HTTP request for `spec`, without authentication headers.

        Raises:
            ProviderError: kind "client" for a parameter no provider knows, or a call
                kind this provider does not offer; retrying cannot help.
        """
        unknown = sorted(set(spec.param_dict) - NEUTRAL_PARAMS)
        if unknown:
            raise ProviderError("client", f"model {spec.model}: unknown generation params {unknown}")
        if spec.kind == "embed":
            return self.build_embed(endpoint, spec)
        return self.build_chat(endpoint, spec)

    @abstractmethod
    def build_chat(self, endpoint: Endpoint, spec: CallSpec) -> HttpCall:
        """A chat request in this wire format."""

    @abstractmethod
    def build_embed(self, endpoint: Endpoint, spec: CallSpec) -> HttpCall:
        """An embedding request in this wire format."""

    @abstractmethod
    def auth_headers(self, api_key: str) -> dict[str, str]:
        """The headers that carry the key. Kept apart from `build` so keys never reach a log or cache."""

    @abstractmethod
    def parse_chat(self, body: bytes) -> ParsedResponse:
        """A 2xx chat body in neutral form; raises `ValidationError` or `ValueError` when off-format."""

    @abstractmethod
    def parse_embed(self, body: bytes) -> ParsedResponse:
        """A 2xx embedding body in neutral form; raises `ValidationError` or `ValueError` when off-format."""

    def rate_limits(self, headers: Mapping[str, str]) -> RateLimitInfo | None:
        """What the response's rate-limit headers say, or None if it sent none."""
        return None

    def retry_after_from_body(self, error: Mapping[str, Any]) -> float | None:
        """A wait requested inside the error body (Gemini); headers are read by `parse`."""
        return None

    def parse(self, spec: CallSpec, status: int, headers: Mapping[str, str], body: bytes) -> ParsedResponse:
        """The neutral result of a 2xx answer.

        Raises:
            ProviderError: for every non-2xx status, classified by `status_kind`, and as
                kind "malformed" for a 2xx body that is not this wire format. `raw`
                keeps the body so nothing paid for is lost.
        """
        if not 200 <= status < 300:
            raise self.error(spec, status, headers, body)
        try:
            if spec.kind == "embed":
                return self.parse_embed(body)
            return self.parse_chat(body)
        except (ValidationError, ValueError, LookupError, TypeError) as exc:
            reason = _first_line(exc)
            raise ProviderError(
                "malformed",
                f"{self.provider} model {spec.model}: body is not the wire format ({reason})",
                status=status,
                raw=raw_text(body),
            ) from None

    def error(self, spec: CallSpec, status: int, headers: Mapping[str, str], body: bytes) -> ProviderError:
        """The `ProviderError` for a non-2xx answer. Its message carries the body's message, never headers."""
        return response_error(
            status, headers, body, f"{self.provider} model {spec.model}", self.retry_after_from_body
        )

    @staticmethod
    def validate(model: type[W], body: bytes) -> W:
        """`body` validated against a wire model; raises `ValidationError` for bad JSON or shape."""
        return model.model_validate_json(body)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def _error_object(body: bytes) -> dict[str, Any]:
    """The `error` object every provider nests its message in, or {} when the body has none."""
    try:
        data = json.loads(body)
    except ValueError:
        return {}
    if not isinstance(data, dict) or not isinstance(data.get("error"), dict):
        return {}
    return data["error"]


def response_error(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    where: str,
    retry_after_from_body: Callable[[Mapping[str, Any]], float | None] | None = None,
) -> ProviderError:
    """The classified `ProviderError` of any non-2xx provider answer, online or batch control call.

    One reading of error bodies for every caller, so a 429 or an overload is retried alike
    whichever path met it. The message is `where` and the body's message, never headers.

    Args:
        where: names the call in the message (a model, or a method and path).
        retry_after_from_body: reads a wait from the body's error object when no header gives one.
    """
    error = _error_object(body)
    kind = status_kind(status, error_codes(error))
    retry_after = parse_retry_after_s(lower_keys(headers))
    if retry_after is None and retry_after_from_body is not None:
        retry_after = retry_after_from_body(error)
    message = str(error.get("message") or "no error message")[:300]
    return ProviderError(
        kind, f"{where}: {message}", status=status, retry_after_s=retry_after, raw=raw_text(body)
    )


_ADAPTERS: dict[str, str] = {
    "openai": "actors.providers.openai_chat:OpenAIAdapter",
    "anthropic": "actors.providers.anthropic:AnthropicAdapter",
    "gemini": "actors.providers.gemini:GeminiAdapter",
}


@cache
def get_adapter(provider: str) -> Adapter:
    """The adapter for a wire format. OpenAI-compatible servers (xAI, vLLM, llama.cpp) use "openai".

    Raises:
        ValueError: for a provider name with no adapter.
    """
    target = _ADAPTERS.get(provider)
    if target is None:
        raise ValueError(f"unknown provider {provider!r}; expected one of {sorted(_ADAPTERS)}")
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)()
