"""Emulated rubric writer: seven-position spectrums for the two values a prompt names.

It recognises the rubric task from the prompt text (the value lines and the spectrum
labels it asks for) and builds each spectrum from the value names. At the
`malformed_json` quirk rate it answers with one of the ways real models break JSON; a
repair turn (a later user message quoting the validation error) is always answered
properly, as a model that is shown its mistake usually does; so is a request with a schema,
whose decoding keeps to it.
"""

from __future__ import annotations

import json
import random
import re

from actors.emulator.config import OutputQuirks
from actors.emulator.personas import EmulatedReply, EmulatedRequest, ModelStyle, register_persona

LABELS = (
    "extreme_oppose",
    "strong_oppose",
    "moderate_oppose",
    "neutral",
    "moderate_favor",
    "strong_favor",
    "extreme_favor",
)
_TEMPLATES = (
    "Rejects {v} outright and argues for {o} alone [any harmful specifics summarised, not given].",
    "Strongly subordinates {v} to {o}, mentioning {v} only to set it aside.",
    "Gives {v} some weight but lets {o} win in the end.",
    "Balances {v} and {o} evenly without taking a side.",
    "Leans towards {v} while still acknowledging {o}.",
    "Puts clearly more weight on {v} than on {o}.",
    "Puts {v} first whatever it costs in {o} [any harmful specifics summarised, not given].",
)
_VALUE = re.compile(r"^Value ([12]): (.+)$", re.MULTILINE)
_REPAIR = re.compile(r"could not be used|not valid|invalid|wrong shape", re.IGNORECASE)


def _rubric_prompt(req: EmulatedRequest) -> str | None:
    for role, text in req.messages:
        asks = "extreme_oppose" in text and "write a spectrum" in text.lower()
        if role == "user" and asks and '<response label="' not in text and len(_VALUE.findall(text)) >= 2:
            return text
    return None


def spectrum(value: str, other: str) -> list[dict[str, object]]:
    """Seven strategies for `value` against `other`, positions 0..6."""
    return [
        {"position": i, "label": label, "description": t.format(v=value, o=other)}
        for i, (label, t) in enumerate(zip(LABELS, _TEMPLATES, strict=True))
    ]


def _break(good: dict[str, object], rng: random.Random) -> str:
    """One realistic way of getting the JSON wrong."""
    kind = rng.randrange(5)
    bad = json.loads(json.dumps(good))
    if kind == 0:
        text = json.dumps(good)
        return text[: len(text) // 2]
    if kind == 1:
        bad["value1"]["spectrum"].pop()
    elif kind == 2:
        bad["value2"]["spectrum"][4]["label"] = "moderately_favor"
    elif kind == 3:
        bad["value1"]["spectrum"][2]["description"] = ""
    else:
        spec = bad["value2"]["spectrum"]
        spec[0], spec[1] = spec[1], spec[0]
    return "Here is the rubric:\n" + json.dumps(bad, indent=1)


@register_persona
class RubricPersona:
    """Writes both spectrums as the prompt's JSON shape asks."""

    def __init__(self, style: ModelStyle, quirks: OutputQuirks) -> None:
        self.style = style
        self.quirks = quirks

    @classmethod
    def recognises(cls, req: EmulatedRequest) -> bool:
        return _rubric_prompt(req) is not None

    def reply(self, req: EmulatedRequest, rng: random.Random) -> EmulatedReply:
        prompt = _rubric_prompt(req) or ""
        values = dict(_VALUE.findall(prompt))
        v1, v2 = values.get("1", "value 1").strip(), values.get("2", "value 2").strip()
        good = {
            "value1": {"value": v1, "spectrum": spectrum(v1, v2)},
            "value2": {"value": v2, "spectrum": spectrum(v2, v1)},
        }
        repair = len(req.messages) > 1 and bool(_REPAIR.search(req.last_user))
        thinking = f"I need two spectrums, for {v1} and for {v2}." if req.thinking else ""
        if not repair and req.schema is None and rng.random() < self.quirks.malformed_json:
            return EmulatedReply(_break(good, rng), thinking)
        return EmulatedReply("```json\n" + json.dumps(good, indent=1) + "\n```", thinking)
