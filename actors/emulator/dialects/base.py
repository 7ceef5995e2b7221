"""What a provider dialect must say: how it reads a request and shapes every answer.

The server runs one pipeline for all providers (auth, rate limit, fault, persona,
response). A dialect is the only place a wire format appears, so adding a provider is
one module and the pipeline never branches on provider names.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web

from actors.emulator.accounts import BucketView, LimitName, Refusal
from actors.emulator.personas import EmulatedRequest
from actors.emulator.prompt_cache import CacheUse
from actors.emulator.tokens import prompt_tokens

ErrorShape = Literal["auth", "invalid", "not_found", "server", "overloaded"]
CacheStyle = Literal["implicit", "explicit"]
JSON = dict[str, Any]


class WireError(ValueError):
    """A request body this provider would reject with 400; the message says why."""


@dataclass(frozen=True)
class ChatInput:
    """A chat request as the pipeline needs it."""

    request: EmulatedRequest
    prompt_texts: tuple[str, ...]
    """System prompt (if any) and message texts in order: the tokens billed as input."""
    cache_prefix: str | None = None
    """Text of an explicitly cache-marked prefix (Anthropic)."""
    show_thinking: bool = False
    """Whether the answer returns the thinking text, not just its token count."""
    answer_tool: str | None = None
    """The tool the request forces (Anthropic): the answer goes back as its input."""

    @property
    def input_tokens(self) -> int:
        return prompt_tokens(list(self.prompt_texts))


@dataclass(frozen=True)
class EmbedInput:
    """An embedding request: the model and the texts, in order."""

    model_id: str
    texts: tuple[str, ...]
    dimensions: int | None = None
    """The vector size asked for (OpenAI `dimensions`, Gemini `outputDimensionality`); None: the model's own."""
    base64: bool = False
    """Whether the vectors go back as base64 of little-endian float32 (OpenAI `encoding_format`)."""

    @property
    def input_tokens(self) -> int:
        return prompt_tokens(list(self.texts))


@dataclass(frozen=True)
class ChatOutput:
    """A generated answer, already capped at max tokens."""

    text: str
    thinking: str
    finish: Literal["stop", "length", "refusal"]
    input_tokens: int
    text_tokens: int
    thinking_tokens: int
    cache: CacheUse
    response_id: str
    tool: str | None = None
    """The forced tool whose input the answer is (`ChatInput.answer_tool`)."""

    @property
    def output_tokens(self) -> int:
        return self.text_tokens + self.thinking_tokens


def text_of(content: Any) -> str:
    """Text of a message content that is a string or a list of text parts/blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    raise WireError("message content must be a string or a list of text parts")


def dimensions(value: Any) -> int | None:
    """An embedding request's size field: absent, or a positive integer."""
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise WireError(f"the embedding size must be a positive integer, got {value!r}")
    return value


def require(body: JSON, name: str, kind: type | tuple[type, ...]) -> Any:
    """A required field of the expected JSON type, or a `WireError` naming it."""
    value = body.get(name)
    if not isinstance(value, kind):
        raise WireError(f"'{name}' is required")
    return value


class Dialect(ABC):
    """One provider's wire format, as the emulator speaks it."""

    name: str
    cache_style: CacheStyle = "implicit"

    @abstractmethod
    def api_key(self, request: web.Request) -> str | None:
        """The key the request carries, or None."""

    @abstractmethod
    def parse_chat(self, body: JSON, model: str | None) -> ChatInput:
        """The chat request; `model` is the path's model for providers that put it there."""

    @abstractmethod
    def parse_embed(self, body: JSON, model: str | None) -> EmbedInput:
        """The embedding request."""

    @abstractmethod
    def error(self, shape: ErrorShape, message: str) -> tuple[int, JSON]:
        """Status and body of an error in this provider's shape."""

    @abstractmethod
    def rate_limited(
        self, refusal: Refusal, views: dict[LimitName, BucketView]
    ) -> tuple[JSON, dict[str, str]]:
        """Body and headers of a 429."""

    def limit_headers(self, views: dict[LimitName, BucketView]) -> dict[str, str]:
        """Rate-limit headers sent with every answer; none by default (Gemini)."""
        return {}

    @abstractmethod
    def chat_body(self, model_id: str, out: ChatOutput) -> JSON:
        """A successful chat answer."""

    @abstractmethod
    def embed_body(self, request: EmbedInput, vectors: list[list[float]]) -> JSON:
        """A successful embedding answer: one vector per text of `request`, in order."""
