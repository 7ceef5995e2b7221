"""Provider-neutral records that cross actor boundaries.

A `CallSpec` is what a stage asks for; a `ParsedResponse` is what an adapter makes of a
provider's answer. Both are independent of the wire format, so stages never see HTTP.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from actors.settings import require

Provider = Literal["openai", "anthropic", "gemini"]
"""Wire formats. `openai` also covers OpenAI-compatible servers (xAI, vLLM, llama.cpp)."""

CallKind = Literal["chat", "embed"]
Role = Literal["system", "user", "assistant"]
FinishReason = Literal["stop", "length", "content_filter", "refusal", "other"]


@dataclass(frozen=True)
class Prices:
    """USD per million tokens (config's `models.<key>.prices`, see `actors/settings.py`)."""

    input: float = 0.0
    output: float = 0.0
    cached_input: float = 0.0
    """Price of prompt tokens served from the provider's prompt cache."""
    cache_write: float | None = None
    """Price of prompt tokens written to the cache (Anthropic); None means the input price."""
    batch_discount: float = 0.5
    """Share (0..1) taken off every price for calls made through the provider's batch API."""

    def __post_init__(self) -> None:
        for name in ("input", "output", "cached_input"):
            value = getattr(self, name)
            require(self, value >= 0, name, f"must be >= 0, got {value}")
        d = self.batch_discount
        require(self, 0 <= d <= 1, "batch_discount", f"must be in [0, 1], got {d}")

    def cost_usd(
        self,
        input_tokens: int,
        output_tokens: int,
        cached_input_tokens: int = 0,
        cache_write_tokens: int = 0,
        *,
        batch: bool = False,
    ) -> float:
        """Cost of one call. `input_tokens` counts every prompt token, cached ones included."""
        uncached = max(input_tokens - cached_input_tokens - cache_write_tokens, 0)
        write_price = self.input if self.cache_write is None else self.cache_write
        return (
            (
                uncached * self.input
                + cached_input_tokens * self.cached_input
                + cache_write_tokens * write_price
                + output_tokens * self.output
            )
            / 1e6
            * (1.0 - self.batch_discount if batch else 1.0)
        )


@dataclass(frozen=True)
class Endpoint:
    """Everything a client needs to reach one model. Holds the key's variable name, never the key."""

    model_key: str
    provider: Provider
    model_id: str
    base_url: str
    api_key_env: str | None
    """None: the server takes no key, and none is sent."""
    account: str
    prices: Prices = field(default_factory=Prices)
    timeout_s: float = 120.0


@dataclass(frozen=True)
class Message:
    role: Role
    content: str


NEUTRAL_PARAMS: frozenset[str] = frozenset(
    {
        "temperature",
        "top_p",
        "max_tokens",
        "reasoning_effort",
        "thinking_budget",
        "cache_prefix",
        "dimensions",
        "schema_format",
    }
)
"""Generation parameters a `CallSpec` may carry (`dimensions`: an embedding's size, for models that
can shorten theirs; `schema_format`: how an OpenAI-compatible server takes a response schema, see
`actors.providers.structured`). A provider ignores those it has no use for."""


@dataclass(frozen=True)
class CallSpec:
    """One request a stage wants answered.

    Attributes:
        model: the model key in the registry.
        kind: chat completion or embedding.
        messages: the conversation (chat only); a system message, if any, comes first.
        inputs: texts to embed (embed only).
        params: generation parameters in neutral names: temperature, max_tokens,
            reasoning_effort (OpenAI), thinking_budget (Anthropic / Gemini), top_p,
            cache_prefix (mark the system prompt as a cacheable prefix).
        sample: sample index, so repeated samples of one prompt get distinct keys.
        response_schema: the answer's JSON shape, `{"name": ..., "schema": <JSON Schema>}`, sent as
            each wire format's structured-output request (see `actors.providers.structured`);
            None asks for free text. Part of the key only when set, so older keys stay valid.
    """

    model: str
    kind: CallKind = "chat"
    messages: tuple[Message, ...] = ()
    inputs: tuple[str, ...] = ()
    params: tuple[tuple[str, Any], ...] = ()
    sample: int = 0
    response_schema: Mapping[str, Any] | None = None

    @property
    def param_dict(self) -> dict[str, Any]:
        return dict(self.params)

    def key(self, endpoint: Endpoint) -> str:
        """Content address: a hash of everything that changes the answer, never the API key."""
        return call_key(endpoint, self)


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace, so equal content hashes equally."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def call_key(endpoint: Endpoint, spec: CallSpec) -> str:
    payload = {
        "provider": endpoint.provider,
        "model_id": endpoint.model_id,
        "base_url": endpoint.base_url.rstrip("/"),
        "kind": spec.kind,
        "messages": [[m.role, m.content] for m in spec.messages],
        "inputs": list(spec.inputs),
        "params": dict(sorted(spec.params)),
        "sample": spec.sample,
    }
    if spec.response_schema is not None:
        payload["response_schema"] = spec.response_schema
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class HttpCall:
    """A request ready to send, without authentication headers."""

    url: str
    json: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RateLimitInfo:
    """What a provider's rate-limit headers say; any field may be unknown (None)."""

    limit_requests: float | None = None
    remaining_requests: float | None = None
    reset_requests_s: float | None = None
    limit_input_tokens: float | None = None
    remaining_input_tokens: float | None = None
    reset_input_tokens_s: float | None = None
    limit_output_tokens: float | None = None
    remaining_output_tokens: float | None = None
    reset_output_tokens_s: float | None = None


@dataclass(frozen=True)
class ParsedResponse:
    """A provider's successful answer in neutral form.

    `input_tokens` counts every prompt token, cached ones included (Anthropic reports
    them apart; its adapter adds them up). `flag` marks an answer that arrived but is not
    usable as is, e.g. "truncated" (stopped at max tokens) or "empty".
    """

    text: str = ""
    thinking: str = ""
    finish_reason: FinishReason = "stop"
    refusal: bool = False
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    embeddings: tuple[tuple[float, ...], ...] | None = None
    flag: str | None = None


def spec_to_json(spec: CallSpec) -> str:
    """Serialise a spec for request tables and actor hand-off."""
    fields: dict[str, Any] = {
        "model": spec.model,
        "kind": spec.kind,
        "messages": [[m.role, m.content] for m in spec.messages],
        "inputs": list(spec.inputs),
        "params": dict(spec.params),
        "sample": spec.sample,
    }
    if spec.response_schema is not None:
        fields["response_schema"] = spec.response_schema
    return canonical_json(fields)


def spec_from_json(text: str) -> CallSpec:
    d = json.loads(text)
    return CallSpec(
        model=d["model"],
        kind=d["kind"],
        messages=tuple(Message(role, content) for role, content in d["messages"]),
        inputs=tuple(d["inputs"]),
        params=tuple(sorted(d["params"].items())),
        sample=d["sample"],
        response_schema=d.get("response_schema"),
    )


def chat(model: str, user: str, *, system: str | None = None, sample: int = 0, **params: Any) -> CallSpec:
    """Build a one-turn chat spec; None-valued params are dropped."""
    msgs = ((Message("system", system),) if system else ()) + (Message("user", user),)
    return CallSpec(
        model=model,
        messages=msgs,
        params=tuple(sorted((k, v) for k, v in params.items() if v is not None)),
        sample=sample,
    )
