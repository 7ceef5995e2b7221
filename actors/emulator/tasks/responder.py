"""Emulated answers to user queries: twelve responder profiles with stable value leanings.

A request that no other task persona claims is a user's query (the responses stage sends
the scenario's query as is). The responder reads which value categories the query touches
(`value_words`), weighs the first two by its profile's leanings, and says where it stands
in plain words ("I would put clearly more weight on X than on Y"), so a scorer reading the
text can place it. Each profile also has its refusal habits by topic, length and tone.
Profiles are invented to be clearly different; none is tuned to any published figure.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass, field
from functools import lru_cache

from actors.emulator.config import OutputQuirks
from actors.emulator.personas import (
    _REGISTRY,
    EmulatedReply,
    EmulatedRequest,
    ModelStyle,
    register_persona,
    topic_words,
)
from actors.emulator.tasks.value_words import CATEGORIES, topics_in, value_terms


@dataclass(frozen=True)
class Profile:
    """How one emulated model answers value tradeoffs."""

    leans: dict[str, float]
    """Value category -> lean in -1..1 (missing: 0)."""
    refusals: dict[str, float] = field(default_factory=dict)
    """Sensitive topic -> probability of refusing a query on it."""
    sentences: int = 5
    """Sentences of supporting text around the stance."""
    tone: str = "plain"
    sycophancy: float = 0.0
    """Pull towards a side the user says they firmly hold (negative: contrarian)."""
    noise: float = 0.25
    """Spread of the per-answer draw around the profile's lean."""


PROFILES: dict[str, Profile] = {
    "claude-opus-4": Profile(
        {"ethics": 0.7, "truthfulness": 0.6, "harm_prevention": 0.4, "care": 0.3, "helpfulness": -0.2},
        {"weapons": 0.6, "cyber": 0.3, "self_harm": 0.2},
        7,
        "formal",
        0.0,
    ),
    "claude-sonnet-4": Profile(
        {"helpfulness": 0.5, "truthfulness": 0.5, "clarity": 0.4, "harm_prevention": 0.3, "community": -0.2},
        {"weapons": 0.5, "cyber": 0.3},
        5,
        "plain",
        0.1,
    ),
    "claude-3-7-sonnet": Profile(
        {"quality": 0.6, "helpfulness": 0.6, "inquiry": 0.3, "care": -0.2, "community": -0.3},
        {"weapons": 0.4},
        6,
        "plain",
        0.2,
    ),
    "claude-3-5-sonnet": Profile(
        {"harm_prevention": 0.6, "care": 0.5, "privacy": 0.4, "autonomy": -0.3, "creativity": -0.1},
        {"weapons": 0.7, "cyber": 0.5, "drugs": 0.4, "self_harm": 0.5, "medical": 0.2},
        5,
        "cautious",
        0.1,
    ),
    "claude-3-opus": Profile(
        {"wellbeing": 0.7, "care": 0.6, "community": 0.4, "ethics": 0.4, "helpfulness": -0.4},
        {"weapons": 0.6, "politics": 0.3},
        9,
        "warm",
        0.2,
    ),
    "gpt-4.1": Profile(
        {"helpfulness": 0.7, "quality": 0.4, "clarity": 0.3, "harm_prevention": -0.1, "wellbeing": -0.3},
        {"weapons": 0.4, "cyber": 0.2},
        4,
        "formal",
        0.3,
    ),
    "gpt-4.1-mini": Profile(
        {"helpfulness": 0.8, "clarity": 0.5, "inquiry": -0.3, "ethics": -0.2},
        {"weapons": 0.3},
        3,
        "terse",
        0.5,
    ),
    "gpt-4o": Profile(
        {"care": 0.8, "wellbeing": 0.5, "growth": 0.4, "truthfulness": -0.3},
        {"self_harm": 0.4, "weapons": 0.3},
        6,
        "warm",
        0.6,
    ),
    "o3": Profile(
        {"truthfulness": 0.8, "inquiry": 0.7, "fairness": 0.3, "care": -0.4, "community": -0.3},
        {"weapons": 0.5, "cyber": 0.4},
        8,
        "formal",
        -0.1,
    ),
    "o4-mini": Profile(
        {"stewardship": 0.5, "helpfulness": 0.5, "privacy": 0.5, "creativity": -0.3, "wellbeing": -0.2},
        {"cyber": 0.5, "drugs": 0.3},
        4,
        "terse",
        0.1,
    ),
    "gemini-2.5-pro": Profile(
        {"inquiry": 0.6, "fairness": 0.5, "community": 0.5, "clarity": 0.3, "autonomy": -0.2},
        {"politics": 0.5, "medical": 0.3, "weapons": 0.4},
        8,
        "cautious",
        0.2,
    ),
    "grok-4": Profile(
        {
            "autonomy": 0.9,
            "creativity": 0.5,
            "truthfulness": 0.4,
            "harm_prevention": -0.6,
            "ethics": -0.3,
            "privacy": -0.2,
        },
        {"weapons": 0.2},
        4,
        "plain",
        0.0,
    ),
}
"""Model id prefix -> profile; the longest prefix of a request's model id wins."""


@lru_cache(maxsize=1024)
def profile_for(model_id: str) -> Profile:
    """The profile of a model id: a named one by longest prefix, else one hashed from the id."""
    hits = [p for p in PROFILES if model_id.startswith(p)]
    if hits:
        return PROFILES[max(hits, key=len)]
    h = hashlib.sha256(f"responder:{model_id}".encode()).digest()
    leans = {cat: (h[i] / 255 - 0.5) * 1.2 for i, cat in enumerate(CATEGORIES)}
    style = ModelStyle.for_model(model_id)
    return Profile(
        leans, {t: 0.2 + h[20] / 255 * 0.4 for t in ("weapons", "cyber")}, style.sentences, style.tone
    )


_FIRM = re.compile(
    r"\b(i firmly|i strongly|i'm convinced|i am convinced|i'm certain|i am certain|obviously|clearly|i believe)\b"
)
_STANCE = {
    3: ("{a} has to come first here, whatever it costs in {b}.",),
    2: (
        "I would put clearly more weight on {a} than on {b}.",
        "My advice: put clearly more weight on {a} than on {b}.",
    ),
    1: (
        "On balance I lean slightly towards {a} over {b}.",
        "I lean slightly towards {a} over {b}, though it is close.",
    ),
    0: ("I would balance {a} and {b} equally here.", "Honestly, I would balance {a} and {b} equally here."),
}
_OPEN = {
    "plain": "Here is how I see {t}.",
    "formal": "The question of {t} involves a genuine tension and deserves a structured answer.",
    "warm": "Thank you for sharing this about {t}; it clearly matters to you.",
    "cautious": "I want to be careful with {t}, because there is real nuance.",
    "terse": "On {t}, briefly:",
}
_FILL = (
    "The details of {t} matter a great deal.",
    "A practical first step is to write down what you most want from {t}.",
    "Consider who else is affected by {t} and how.",
    "It is worth talking this through with someone you trust.",
    "Whatever you decide, be open about your reasons.",
    "Revisit the decision once you know more about {t}.",
    "Small reversible steps are safer than one big irreversible one.",
    "People in similar situations often regret acting in haste.",
    "Check the facts about {t} before you commit.",
)
_REFUSE = (
    "I'm sorry, but I can't help with that request.",
    "I can't assist with this, but I'm glad to talk about safer alternatives.",
)
_TASK_MARKERS = ("You are helping to stress-test", "You are grading", "You are designing a grading rubric")


def strength(lean: float) -> int:
    """How firmly a preference of size |lean| is stated: 0 (balanced) .. 3 (absolute)."""
    mag = abs(lean)
    return 0 if mag < 0.2 else 1 if mag < 0.6 else 2 if mag < 1.1 else 3


def _user_pull(query: str, term: str) -> float:
    """+1 when the user firmly backs `term` in the same sentence, else 0."""
    for sentence in re.split(r"(?<=[.!?])\s+", query.lower()):
        if term in sentence and _FIRM.search(sentence):
            return 1.0
    return 0.0


@register_persona
class ResponderPersona:
    """Answers a user's query with its profile's stance on the values the query touches."""

    def __init__(self, style: ModelStyle, quirks: OutputQuirks) -> None:
        self.style = style
        self.quirks = quirks

    @classmethod
    def recognises(cls, req: EmulatedRequest) -> bool:
        """A user query: no other task persona claims it and it is no stage instruction."""
        text = req.last_user
        if not text.strip() or any(m in text for m in _TASK_MARKERS):
            return False
        return not any(other.recognises(req) for other in _REGISTRY if other is not cls)

    def reply(self, req: EmulatedRequest, rng: random.Random) -> EmulatedReply:
        query = req.last_user
        prof = profile_for(req.model_id)
        topic = " and ".join(topic_words(query, 2))
        thinking = (
            f"The user asks about {topic}. I should weigh what is at stake and answer plainly."
            if req.thinking
            else ""
        )
        for t in topics_in(query):
            if rng.random() < prof.refusals.get(t, 0.0):
                return EmulatedReply(rng.choice(_REFUSE), thinking, "refusal", refusal=True)
        stance = self._stance(query, prof, rng)
        n = max(1, prof.sentences + rng.randint(-1, 1))
        fill = [s.format(t=topic) for s in rng.sample(_FILL, k=min(n, len(_FILL)))]
        cut = rng.randint(0, len(fill))
        body = [_OPEN.get(prof.tone, _OPEN["plain"]).format(t=topic), *fill[:cut], stance, *fill[cut:]]
        return EmulatedReply(" ".join(body), thinking)

    @staticmethod
    def _stance(query: str, prof: Profile, rng: random.Random) -> str:
        terms = value_terms(query)
        if len(terms) >= 2:
            (a, ca), (b, cb) = terms[0], terms[1]
            lean = prof.leans.get(ca, 0.0) - prof.leans.get(cb, 0.0)
            lean += prof.sycophancy * (_user_pull(query, a) - _user_pull(query, b)) + rng.gauss(0, prof.noise)
            if lean < 0:
                a, b = b, a
            return rng.choice(_STANCE[strength(lean)]).format(a=a, b=b)
        if len(terms) == 1:
            a, ca = terms[0]
            lean = prof.leans.get(ca, 0.0) + rng.gauss(0, prof.noise)
            if strength(lean) == 0:
                return f"{a.capitalize()} matters here, but it is not the only thing that does."
            return (
                f"{a.capitalize()} matters most here."
                if lean > 0
                else f"I would not let {a} drive this decision."
            )
        return "There is no single right answer; it depends on what matters most to you."
