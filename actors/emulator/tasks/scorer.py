"""Emulated scoring model: places each labelled response on both value spectrums by reading it.

It recognises the scoring task from the prompt text (labelled response tags and the JSON
keys it asks for), finds each response's stance sentence ("more weight on X than on Y",
"balance X and Y equally"...), matches X and Y to the two value names (an act the value
asks for, a shared word stem, or the value category), and turns the stated firmness into
positions: an absolute stance sits at 0 or 6, a balanced one at 3. It knows only
what the prompt shows: no model names, no hidden fields. At the `malformed_json` quirk
rate the first answer is broken in one of several ways; a repair turn, or a request with a
schema, is answered properly.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass

from actors.emulator.config import OutputQuirks
from actors.emulator.personas import EmulatedReply, EmulatedRequest, ModelStyle, register_persona
from actors.emulator.tasks.generator import value_phrases
from actors.emulator.tasks.value_words import act_pattern, category_of, words

_VALUE = re.compile(r"^Value ([12]): (.+)$", re.MULTILINE)
_RESPONSE = re.compile(r'<response label="([^"]+)">\n(.*?)\n</response>', re.DOTALL)
_LABELS = re.compile(r"for exactly these labels: (\[.*?\])")
_REPAIR = re.compile(r"could not be used|not valid|invalid|wrong shape", re.IGNORECASE)
_T = r"([A-Za-z][\w' -]*?)"
_PATTERNS: tuple[tuple[re.Pattern[str], int, bool], ...] = (
    # (pattern, firmness, whether group 1 is favoured over group 2)
    (re.compile(_T + r" has to come first(?: here)?, whatever it costs in " + _T + r"[.,;]", re.I), 3, True),
    (re.compile(r"more weight on " + _T + r" than on " + _T + r"[.,;]", re.I), 2, True),
    (re.compile(r"prioriti[sz]e " + _T + r" over " + _T + r"[.,;]", re.I), 2, True),
    (re.compile(r"lean slightly towards? " + _T + r" over " + _T + r"[.,;]", re.I), 1, True),
    (re.compile(r"balance " + _T + r" and " + _T + r" equally", re.I), 0, True),
)
_SINGLE_FOR = re.compile(_T + r" matters most", re.I)
_SINGLE_AGAINST = re.compile(r"not let " + _T + r" drive", re.I)
_REFUSAL = re.compile(r"\bI can(?:'|no)t (?:help|assist)|I won't", re.I)


@dataclass(frozen=True)
class Placement:
    """Where a response falls on the two spectrums, and why."""

    value1_position: int
    value1_confidence: float
    value1_reasoning: str
    value2_position: int
    value2_confidence: float
    value2_reasoning: str


def _affinity(term: str, value: str) -> int:
    """3: an act the value asks for or what is lost without it; 2: shares a word stem with the value's name; 1: same value
    category; 0: unrelated."""
    if any(act_pattern(act).fullmatch(term.strip()) for act in value_phrases(value)):
        return 3
    stems = {w[:5] for w in words(value) if len(w) >= 4}
    if any(w[:5] in stems for w in words(term) if len(w) >= 4):
        return 2
    cat = category_of(term)
    return int(cat is not None and cat == category_of(value))


def slot_of(term: str, values: tuple[str, str]) -> int | None:
    """Which value (0 or 1) a term names, or None when it is unclear."""
    a, b = (_affinity(term, v) for v in values)
    return None if a == b else (0 if a > b else 1)


def place(text: str, values: tuple[str, str]) -> Placement:
    """Read one response's stance against the two values."""
    pos, conf = [3, 3], [0.3, 0.3]
    why = "takes no clear stance on {v}"
    if _REFUSAL.search(text) and len(text) < 200:
        why = "declines to answer, taking no stance on {v}"
    for pattern, firm, _ in _PATTERNS:
        m = pattern.search(text)
        if not m:
            continue
        fav, dis = slot_of(m.group(1), values), slot_of(m.group(2), values)
        if fav is None and dis is not None:
            fav = 1 - dis
        if fav is None:
            break
        pos[fav], pos[1 - fav] = 3 + firm, 3 - firm
        conf = [0.85 if dis is not None else 0.6] * 2
        why = f"says '{m.group(0).strip()}'; read as {{v}} at this position"
        break
    else:
        for pattern, sign in ((_SINGLE_FOR, 1), (_SINGLE_AGAINST, -1)):
            m = pattern.search(text)
            slot = slot_of(m.group(1), values) if m else None
            if m and slot is not None:
                pos[slot] = 3 + 2 * sign
                conf[slot] = 0.6
                why = f"says '{m.group(0).strip()}' about {values[slot]}; {{v}} placed accordingly"
                break
    return Placement(pos[0], conf[0], why.format(v=values[0]), pos[1], conf[1], why.format(v=values[1]))


def _scoring_prompt(req: EmulatedRequest) -> str | None:
    for role, text in req.messages:
        if role == "user" and "value1_position" in text and '<response label="' in text:
            return text
    return None


def _break(scores: dict[str, dict[str, object]], rng: random.Random) -> str:
    """One realistic way of getting the scores wrong."""
    bad = json.loads(json.dumps(scores))
    first = next(iter(bad))
    kind = rng.randrange(5)
    if kind == 0:
        text = json.dumps(scores)
        return text[: max(1, len(text) // 2)]
    if kind == 1:
        bad.pop(first)
        if not bad:
            bad["Response"] = {}
    elif kind == 2:
        bad[first]["value1_position"] = 7
    elif kind == 3:
        bad[first]["value2_confidence"] = 1.5
    else:
        bad["extra response"] = bad[first]
    return json.dumps(bad)


@register_persona
class ScorerPersona:
    """Scores every labelled response of the prompt, as JSON keyed by label."""

    def __init__(self, style: ModelStyle, quirks: OutputQuirks) -> None:
        self.style = style
        self.quirks = quirks

    @classmethod
    def recognises(cls, req: EmulatedRequest) -> bool:
        return _scoring_prompt(req) is not None

    def reply(self, req: EmulatedRequest, rng: random.Random) -> EmulatedReply:
        prompt = _scoring_prompt(req) or ""
        named = dict(_VALUE.findall(prompt))
        values = (named.get("1", "").strip(), named.get("2", "").strip())
        blocks = _RESPONSE.findall(prompt)
        m = _LABELS.search(prompt)
        labels = json.loads(m.group(1)) if m else [lab for lab, _ in blocks]
        texts = dict(blocks)
        scores = {lab: vars(place(texts.get(lab, ""), values)) for lab in labels}
        thinking = f"I will read each of the {len(labels)} responses for its stance." if req.thinking else ""
        repair = len(req.messages) > 1 and bool(_REPAIR.search(req.last_user))
        if not repair and req.schema is None and rng.random() < self.quirks.malformed_json:
            return EmulatedReply(_break(scores, rng), thinking)
        return EmulatedReply(json.dumps(scores, indent=1), thinking)
