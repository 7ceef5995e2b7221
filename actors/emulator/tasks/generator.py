"""Emulated query generators and rewriters for the scenarios stage (METHOD.md §2).

`QueryGeneratorPersona` answers a prompt that asks the model to imagine a user message
trading one named value off against another and to give it after an answer tag.
`QueryRewriterPersona` answers a prompt that asks to rewrite a `<message>` so that the
user strongly favours one value. Both read everything from the prompt text, the way a
model would: the value names, the tag (from "Then write X on its own line"), the message.

Questions are built from situation fragments (who, what, stakes, a concrete ask) and
from what honouring each value means in practice, keyed on the words of the value names;
these phrase tables live in generator_phrases.json beside this module.
Each model id hashes to its own topic leanings (workplace, family, health, tech,
community, money), habits (visible reasoning, quotes or bold around the tag) and tone.

Misbehaviour, drawn once per request from the server's rng, at the `OutputQuirks` rates:
refusal (half of them provider-level, `refusal=True`; half a refusal sentence), a dropped
tag, or truncation (text cut mid-way, finish reason "length"). Independently of the
quirks, a well-behaved answer restates its input at the fixed `restate_rate` (1%): the
generator copies the prompt's instructions after the tag, the rewriter returns the
message unchanged. Real models do both now and then, and the stage's restatement filter
must see them; a default run still keeps about 98% of its scenarios.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from actors.emulator.config import OutputQuirks
from actors.emulator.personas import EmulatedReply, EmulatedRequest, ModelStyle, Tone, register_persona

Quirk = str
"""One of "refusal", "drop_tag", "truncate", or "" for a well-behaved answer."""

_TAG_INSTRUCTION = re.compile(r"Then write (.+?) on its own line", re.IGNORECASE)
_VALUE_LINE = re.compile(r"^\s*Value ([12])\s*:\s*(.+?)\s*$", re.MULTILINE | re.IGNORECASE)
_TRADE_OFF = re.compile(r"trade (.+?) off against (.+?)[:.;,]", re.IGNORECASE)
_MESSAGE = re.compile(r"<message>\s*(.*?)\s*</message>", re.DOTALL | re.IGNORECASE)
_FAVOUR = re.compile(
    r"strong prior view in favou?r of (.+?), and expects the assistant to side with it over (.+?)\.",
    re.IGNORECASE | re.DOTALL,
)


@dataclass(frozen=True)
class _ValueSense:
    """What honouring a value means in a situation: gerund phrases and what is lost without it."""

    stems: tuple[str, ...]
    acts: tuple[str, ...]
    loss: str

    @property
    def key(self) -> str:
        """The sense's name, which situations list in `fits`: its first stem."""
        return self.stems[0] if self.stems else ""


@dataclass(frozen=True)
class _Situation:
    who: str
    setting: str
    cp: str
    stakes: str
    ask: str
    fits: tuple[str, ...]
    """Keys of the value senses (`_ValueSense.key`) this situation puts under strain."""


def _load_phrases() -> dict[str, Any]:
    """The phrase tables, kept in generator_phrases.json so this module stays code."""
    text = (
        resources.files("actors.emulator.tasks")
        .joinpath("generator_phrases.json")
        .read_text(encoding="utf-8")
    )
    return json.loads(text)


_PHRASES = _load_phrases()
_SENSES: tuple[_ValueSense, ...] = tuple(
    _ValueSense(tuple(s["stems"]), tuple(s["acts"]), s["loss"]) for s in _PHRASES["senses"]
)
"""Checked in order; the first with a stem inside a value's name gives its sense.
`{cp}` in a phrase is the person or group the situation is about."""
_DOMAINS: dict[str, tuple[_Situation, ...]] = {
    domain: tuple(_Situation(**{**sit, "fits": tuple(sit["fits"])}) for sit in sits)
    for domain, sits in _PHRASES["domains"].items()
}
_DOMAIN_NAMES: tuple[str, ...] = tuple(_DOMAINS)
_INTROS: dict[Tone, tuple[str, ...]] = {tone: tuple(v) for tone, v in _PHRASES["intros"].items()}
"""Openers by tone; `{who}` is the situation's person."""
_DILEMMAS: tuple[str, ...] = tuple(_PHRASES["dilemmas"])
"""The pull between the values, from `_acts`: {act1}, {act2}, {loss1}, {loss2}."""
_GENERIC_ASKS: tuple[str, ...] = tuple(_PHRASES["generic_asks"])
_STANCE_PREFIXES: tuple[str, ...] = tuple(_PHRASES["stance_prefixes"])
"""A rewrite's stance sentences: {favoured}, {other} and {act_f} (see `rewrite`)."""
_STANCE_SUFFIXES: tuple[str, ...] = tuple(_PHRASES["stance_suffixes"])
_REFUSALS: tuple[str, ...] = tuple(_PHRASES["refusals"])
_NO_TAG_LEADS: tuple[str, ...] = tuple(_PHRASES["no_tag_leads"])
"""What precedes a query whose tag was dropped, when no reasoning is shown."""


@dataclass(frozen=True)
class _Habits:
    """What a model id hashes to: its topic leanings and how it lays out its answer."""

    domains: tuple[str, ...]
    """Domains in order of preference: 55% of the weight on the first, 25% on the second."""
    visible_reasoning: float
    """Probability of reasoning in the visible text before the tag."""
    wrap: str
    """How the question follows the tag: "line", "same_line", "quoted" or "bold"."""


@lru_cache(maxsize=1024)
def habits(model_id: str) -> _Habits:
    """The generator habits of a model id."""
    h = hashlib.sha256(f"generator:{model_id}".encode()).digest()
    order = sorted(_DOMAIN_NAMES, key=lambda d: hashlib.sha256(h + d.encode()).digest())
    wraps = ("line", "line", "same_line", "quoted", "bold")
    return _Habits(tuple(order), 0.15 + h[0] / 255 * 0.5, wraps[h[1] % len(wraps)])


def _sense(value: str) -> _ValueSense:
    low = value.lower()
    for sense in _SENSES:
        if any(stem in low for stem in sense.stems):
            return sense
    return _ValueSense((), (f"holding on to {low}", f"putting {low} first"), low)


def sense_phrases() -> tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]:
    """(stems, phrases) of every value sense, phrases being its acts and then its loss (`{cp}`: the
    person concerned): what any model reading a query knows a value asks for."""
    return tuple((s.stems, (*s.acts, s.loss)) for s in _SENSES)


def value_phrases(value: str) -> tuple[str, ...]:
    """The acts and the loss of the sense a value name has, as `sense_phrases` gives them."""
    sense = _sense(value)
    return (*sense.acts, sense.loss)


def stance_acts(value: str) -> tuple[str, ...]:
    """The concrete courses of action a user favouring `value` would press for, as a rewrite words them."""
    return tuple(a.replace("{cp}'s", "their").replace("{cp}", "them") for a in _sense(value).acts)


def _acts(value1: str, value2: str, rng: random.Random) -> tuple[str, str, str, str]:
    """(act1, act2, loss1, loss2) for two values; distinct acts when both share a sense."""
    s1, s2 = _sense(value1), _sense(value2)
    act1 = rng.choice(s1.acts)
    act2 = rng.choice([a for a in s2.acts if a != act1] or [f"putting {value2.lower()} first"])
    loss2 = s2.loss if s2.loss != s1.loss else value2.lower()
    return act1, act2, s1.loss, loss2


def _fill(template: str, cp: str) -> str:
    """Put the counterpart into a phrase, with a plural-aware possessive ("the families'")."""
    possessive = cp + ("'" if cp.endswith("s") else "'s")
    return template.replace("{cp}'s", possessive).replace("{cp}", cp)


def _pick_situation(h: _Habits, value1: str, value2: str, rng: random.Random) -> tuple[str, _Situation]:
    """A situation drawn by the model's topic leanings, favouring ones that strain either value."""
    keys = {_sense(value1).key, _sense(value2).key}
    shares = (0.55, 0.25) + (0.2 / (len(h.domains) - 2),) * (len(h.domains) - 2)
    options: list[tuple[str, _Situation]] = []
    weights: list[float] = []
    for domain, share in zip(h.domains, shares, strict=True):
        sits = _DOMAINS[domain]
        for sit in sits:
            options.append((domain, sit))
            weights.append(share / len(sits) * (1 + 4 * len(keys & set(sit.fits))))
    return rng.choices(options, weights)[0]


def draw_quirk(quirks: OutputQuirks, rng: random.Random) -> Quirk:
    """One draw decides the misbehaviour, so each rate is honoured on its own."""
    u = rng.random()
    for name, rate in (
        ("refusal", quirks.refusal),
        ("drop_tag", quirks.drop_tag),
        ("truncate", quirks.truncate),
    ):
        if u < rate:
            return name
        u -= rate
    return ""


def find_tag(prompt: str) -> str | None:
    """The answer tag the prompt asks for ("Then write X on its own line")."""
    m = _TAG_INSTRUCTION.search(prompt)
    return m.group(1).strip() if m else None


def _tagged(tag: str, query: str, wrap: str) -> str:
    if wrap == "same_line":
        return f"{tag} {query}"
    if wrap == "quoted":
        return f'{tag}\n"{query}"'
    if wrap == "bold":
        return f"**{tag}**\n{query}"
    return f"{tag}\n{query}"


class _TaggedPersona:
    """Shared by both personas: quirks, reasoning and the tag layout."""

    restate_rate: float = 0.01
    """Fixed rate of restating the input instead of doing the task (see module doc)."""

    def __init__(self, style: ModelStyle, quirks: OutputQuirks) -> None:
        self.style = style
        self.quirks = quirks

    def finish(
        self,
        req: EmulatedRequest,
        rng: random.Random,
        quirk: Quirk,
        tag: str,
        query: str,
        reasoning: str,
        thinking: str,
        restatement: str,
    ) -> EmulatedReply:
        """The reply for a drawn quirk: refusal, untagged, truncated, a restatement or well-formed."""
        h = habits(req.model_id)
        thinking = thinking if req.thinking else ""
        if not quirk and rng.random() < self.restate_rate:
            return EmulatedReply(_tagged(tag, restatement, "line"), thinking)
        if quirk == "refusal":
            text = rng.choice(_REFUSALS)
            if rng.random() < 0.5:
                return EmulatedReply(text, thinking, "refusal", refusal=True)
            return EmulatedReply(text, thinking)
        shown = reasoning if rng.random() < h.visible_reasoning else ""
        if quirk == "drop_tag":
            lead = shown + "\n\n" if shown else rng.choice(_NO_TAG_LEADS)
            return EmulatedReply(lead + query, thinking)
        text = (shown + "\n\n" if shown else "") + _tagged(tag, query, h.wrap)
        if quirk == "truncate":
            return EmulatedReply(cut_midway(text, rng), thinking, "length")
        return EmulatedReply(text, thinking)


def cut_midway(text: str, rng: random.Random) -> str:
    """`text` cut at a word boundary between 30% and 85% of its length."""
    at = int(len(text) * rng.uniform(0.3, 0.85))
    space = text.rfind(" ", 0, at)
    return text[: space if space > 0 else at].rstrip()


@register_persona
class QueryGeneratorPersona(_TaggedPersona):
    """Writes a user question that forces a tradeoff between the two values the prompt names."""

    @classmethod
    def recognises(cls, req: EmulatedRequest) -> bool:
        text = req.last_user
        return (
            find_tag(text) is not None
            and "<message>" not in text
            and bool(re.search(r"\bimagine\b", text, re.IGNORECASE))
            and _values(text) is not None
        )

    def reply(self, req: EmulatedRequest, rng: random.Random) -> EmulatedReply:
        prompt = req.last_user
        tag = find_tag(prompt) or "FINAL QUERY:"
        value1, value2 = _values(prompt) or ("this", "that")
        quirk = draw_quirk(self.quirks, rng)
        h = habits(req.model_id)
        domain, sit = _pick_situation(h, value1, value2, rng)
        query = self.question(value1, value2, sit, rng)
        reasoning = (
            f"Let me think about where {value1} and {value2} genuinely pull apart. "
            f"A good case: someone who is {sit.who}, where {sit.stakes[0].lower() + sit.stakes[1:]}"
        )
        thinking = (
            f"The two values are {value1} and {value2}. I want a {domain} situation where serving one "
            f"costs the other. Being {sit.who} works: {sit.setting} The user should end with a concrete "
            "request, and I should not name the values outright."
        )
        return self.finish(req, rng, quirk, tag, query, reasoning, thinking, restated(prompt, tag))

    def question(self, value1: str, value2: str, sit: _Situation, rng: random.Random) -> str:
        """A user message: who, the situation, the pull between the values, the stakes, a concrete ask."""
        act1, act2, loss1, loss2 = _acts(value1, value2, rng)
        dilemma = rng.choice(_DILEMMAS).format(act1=act1, act2=act2, loss1=loss1, loss2=loss2)
        intro = rng.choice(_INTROS[self.style.tone]).format(who=sit.who)
        ask = sit.ask if rng.random() < 0.7 else f"{sit.ask} {rng.choice(_GENERIC_ASKS)}"
        parts = [intro, sit.setting, _fill(dilemma, sit.cp), sit.stakes, ask]
        if self.style.tone == "terse" and rng.random() < 0.5:
            parts.remove(sit.stakes)
        return " ".join(parts)


def _values(prompt: str) -> tuple[str, str] | None:
    """The two value names: from "Value 1: ..." lines, else from "trade X off against Y"."""
    found = dict(_VALUE_LINE.findall(prompt))
    if "1" in found and "2" in found:
        return found["1"], found["2"]
    m = _TRADE_OFF.search(prompt)
    return (m.group(1).strip(), m.group(2).strip()) if m else None


def restated(prompt: str, tag: str) -> str:
    """The prompt's text before the paragraph that asks for the tag: a near-verbatim restatement."""
    idx = prompt.find(tag)
    head = prompt[:idx] if idx >= 0 else prompt
    cut = head.rfind("\n\n")
    return (head[:cut] if cut > 0 else head).strip()


@register_persona
class QueryRewriterPersona(_TaggedPersona):
    """Rewrites a `<message>` so that the user holds a firm view in favour of one value."""

    @classmethod
    def recognises(cls, req: EmulatedRequest) -> bool:
        text = req.last_user
        return find_tag(text) is not None and bool(_MESSAGE.search(text)) and bool(_FAVOUR.search(text))

    def reply(self, req: EmulatedRequest, rng: random.Random) -> EmulatedReply:
        prompt = req.last_user
        tag = find_tag(prompt) or "FINAL QUERY:"
        message = m.group(1) if (m := _MESSAGE.search(prompt)) else ""
        favoured, other = (
            (f.group(1).strip(), f.group(2).strip()) if (f := _FAVOUR.search(prompt)) else ("", "")
        )
        quirk = draw_quirk(self.quirks, rng)
        query = rewrite(message, favoured, other, rng)
        reasoning = (
            f"The user should sound certain that {favoured} matters more than {other}, in the same situation."
        )
        thinking = (
            f"I need to keep the situation and the request but make the user firmly favour {favoured} over "
            f"{other}. A stance sentence up front and a closing demand should do it."
        )
        return self.finish(req, rng, quirk, tag, query, reasoning, thinking, message)


def rewrite(message: str, favoured: str, other: str, rng: random.Random) -> str:
    """The message with a firm stance towards `favoured`: a stance opener, edits, a closing demand."""
    act_f = rng.choice(stance_acts(favoured))
    fill = {"favoured": favoured.lower(), "other": other.lower(), "act_f": act_f}
    body = message
    for hedge in ("I honestly don't know what the right move is here", "I'm a bit stuck"):
        body = body.replace(hedge, "I know what matters most here")
    body = body.replace("What would you do in my position, concretely?", f"How do I go about {act_f}?")
    opener = rng.choice(_STANCE_PREFIXES).format(**fill)
    closer = rng.choice(_STANCE_SUFFIXES).format(**fill)
    return f"{opener} {body} {closer}" if rng.random() < 0.6 else f"{body} {opener} {closer}"
