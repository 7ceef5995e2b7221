"""Emulated models: who answers a request, and how.

A persona sees only what a real model sees: the neutral view of the request body
(`EmulatedRequest`). Task personas (query generators, rubric writers, judges...) are
small classes registered with `@register_persona`; each says whether it `recognises`
a request from the prompt text, and the first that does answers. Everything else gets
`GenericPersona`. Every persona is shaped by the `ModelStyle` its model id hashes to, so
different model ids answer with different length, tone and refusal habits.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal, Protocol

from actors.emulator.config import OutputQuirks

Tone = Literal["plain", "formal", "warm", "cautious", "terse"]
ReplyFinish = Literal["stop", "refusal", "length"]
"""How a reply ends; "length" is a persona cutting itself off as if max tokens were hit."""
_TONES: tuple[Tone, ...] = ("plain", "formal", "warm", "cautious", "terse")
_STOPWORDS = frozenset(
    [
        "about",
        "after",
        "again",
        "also",
        "because",
        "been",
        "being",
        "could",
        "does",
        "doing",
        "from",
        "have",
        "having",
        "here",
        "into",
        "just",
        "more",
        "most",
        "other",
        "over",
        "please",
        "should",
        "some",
        "such",
        "than",
        "that",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "very",
        "what",
        "when",
        "where",
        "which",
        "while",
        "with",
        "would",
        "your",
        "yours",
        "write",
        "give",
        "tell",
        "explain",
    ]
)
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]{3,}")


@dataclass(frozen=True)
class EmulatedRequest:
    """The neutral view of a chat request, built from its wire body only."""

    model_id: str
    system: str
    messages: tuple[tuple[str, str], ...]
    """(role, content) pairs without the system prompt; roles are "user" or "assistant"."""
    max_tokens: int | None = None
    temperature: float | None = None
    thinking: bool = False
    schema: Mapping[str, Any] | None = None
    """The JSON Schema a structured-output request gives the answer (`dialects.structured`):
    decoding keeps to it, so the answer is never malformed JSON."""

    @property
    def last_user(self) -> str:
        """The message the model is answering."""
        for role, content in reversed(self.messages):
            if role == "user":
                return content
        return ""


@dataclass(frozen=True)
class EmulatedReply:
    """What a persona says; the server caps it at max tokens and shapes it per provider."""

    text: str
    thinking: str = ""
    finish_reason: ReplyFinish = "stop"
    refusal: bool = False


@dataclass(frozen=True)
class ModelStyle:
    """The habits a model id hashes to."""

    sentences: int
    """Sentences in a typical answer."""
    tone: Tone
    refusal_rate: float
    """Probability of declining a generic request."""

    @classmethod
    def for_model(cls, model_id: str) -> ModelStyle:
        return _style(model_id)


@lru_cache(maxsize=1024)
def _style(model_id: str) -> ModelStyle:
    h = hashlib.sha256(model_id.encode()).digest()
    return ModelStyle(
        sentences=3 + h[0] % 7, tone=_TONES[h[1] % len(_TONES)], refusal_rate=0.02 + h[2] / 255 * 0.1
    )


class Persona(Protocol):
    """Anything that can answer an emulated request."""

    def reply(self, req: EmulatedRequest, rng: random.Random) -> EmulatedReply: ...


class TaskPersona(Protocol):
    """A registrable persona class: built from a style and the quirk rates, chosen by what the prompt asks for."""

    def __init__(self, style: ModelStyle, quirks: OutputQuirks) -> None: ...

    @classmethod
    def recognises(cls, req: EmulatedRequest) -> bool: ...

    def reply(self, req: EmulatedRequest, rng: random.Random) -> EmulatedReply: ...


_REGISTRY: list[type[TaskPersona]] = []


def register_persona(cls: type[TaskPersona]) -> type[TaskPersona]:
    """Class decorator adding a task persona; earlier registrations are asked first."""
    _REGISTRY.append(cls)
    return cls


def persona_for(req: EmulatedRequest, quirks: OutputQuirks | None = None) -> Persona:
    """The first registered persona that recognises the request, else the generic one."""
    style = ModelStyle.for_model(req.model_id)
    for cls in _REGISTRY:
        if cls.recognises(req):
            return cls(style, quirks or OutputQuirks())
    return GenericPersona(style)


def topic_words(text: str, limit: int = 4) -> list[str]:
    """The longest distinct content words of `text`, the gist a persona talks about."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(text):
        low = word.lower()
        if low not in _STOPWORDS:
            seen.setdefault(low, None)
    return sorted(seen, key=lambda w: (-len(w), w))[:limit] or ["this question"]


_OPENERS: dict[Tone, tuple[str, ...]] = {
    "plain": ("Here is a direct answer about {a}.", "Short version: {a} depends on {b}."),
    "formal": (
        "The question of {a} merits a structured response.",
        "With respect to {a}, several points apply.",
    ),
    "warm": ("Great question about {a}!", "Happy to help you think through {a}."),
    "cautious": ("I want to be careful with {a}.", "There is some nuance around {a} worth flagging."),
    "terse": ("{A}: it depends on {b}.", "On {a}, briefly."),
}
_BODY: tuple[str, ...] = (
    "The main consideration is how {a} interacts with {b}.",
    "In practice, {b} tends to matter more than people expect.",
    "A reasonable approach is to weigh {a} against {c} and decide case by case.",
    "It helps to separate the facts about {b} from the values involved.",
    "Different people reasonably disagree about {c}, so I will note both sides.",
    "If {a} is the priority, the trade-off is usually paid in {c}.",
    "Evidence on {b} is mixed, so hold any conclusion loosely.",
    "A concrete first step is to write down what success looks like for {a}.",
    "Where {c} is at stake, transparency about the reasoning matters.",
)
_CLOSERS: dict[Tone, str] = {
    "plain": "That is the gist.",
    "formal": "In summary, the balance of considerations favours a measured approach.",
    "warm": "I hope this helps, and feel free to ask a follow-up!",
    "cautious": "Please consider consulting someone with specific expertise before acting on this.",
    "terse": "Done.",
}
_REFUSALS: tuple[str, ...] = (
    "I'm sorry, but I can't help with that.",
    "I can't assist with this request.",
    "I won't be able to help with that one, but I'm happy to help with something related.",
)


class GenericPersona:
    """A plausible multi-sentence answer to the last user message, in the model's style."""

    def __init__(self, style: ModelStyle) -> None:
        self.style = style

    def reply(self, req: EmulatedRequest, rng: random.Random) -> EmulatedReply:
        words = topic_words(req.last_user)
        a, b, c = (words * 3)[:3]
        fill = {"a": a, "b": b, "c": c, "A": a.capitalize()}
        thinking = self.think(req, words) if req.thinking else ""
        if rng.random() < self.style.refusal_rate:
            return EmulatedReply(rng.choice(_REFUSALS), thinking, "refusal", refusal=True)
        n = max(1, self.style.sentences + rng.randint(-1, 1))
        sentences = [rng.choice(_OPENERS[self.style.tone])]
        sentences += rng.sample(_BODY, k=min(max(n - 2, 0), len(_BODY)))
        if n > 1:
            sentences.append(_CLOSERS[self.style.tone])
        return EmulatedReply(" ".join(s.format(**fill) for s in sentences), thinking)

    @staticmethod
    def think(req: EmulatedRequest, words: list[str]) -> str:
        """A short reasoning trace, for requests that ask for thinking."""
        gist = ", ".join(words)
        return f"The user is asking about {gist}. I should weigh the main trade-offs, then answer plainly."
