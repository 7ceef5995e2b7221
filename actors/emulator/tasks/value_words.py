"""What emulated models "know" about values: word stems per value category, the acts that serve
each value, and sensitive topics.

This is world knowledge, the kind any language model has: that "candid" is about
truthfulness, "autonomy" about freedom and "refusing to cut corners" about quality.
Responders use it to see which values a query puts at stake (`stakes`); the scorer uses it
to match what a response favours to the value names it is given. The categories echo
level-2 value categories; none is tied to the stages' code.
"""

from __future__ import annotations

import re
from functools import lru_cache

from actors.emulator.tasks.generator import sense_phrases

CATEGORIES: dict[str, tuple[str, ...]] = {
    "truthfulness": (
        "honest",
        "truth",
        "accura",
        "transparen",
        "candor",
        "candid",
        "fact",
        "precis",
        "uncertain",
        "mistake",
        "disclos",
        "lie",
        "lying",
        "decept",
        "deceiv",
    ),
    "inquiry": (
        "curios",
        "learn",
        "knowledge",
        "educat",
        "explor",
        "skeptic",
        "critical",
        "wonder",
        "mentor",
        "evidence",
        "reasoning",
        "open-mind",
    ),
    "clarity": (
        "clarity",
        "clear",
        "concise",
        "plain",
        "accessib",
        "inclusive",
        "translat",
        "structur",
        "simplicity",
    ),
    "helpfulness": (
        "helpful",
        "efficien",
        "practical",
        "pragmat",
        "resourceful",
        "responsive",
        "useful",
        "productiv",
        "deadline",
        "solution",
        "troubleshoot",
        "adaptab",
        "user focus",
    ),
    "quality": (
        "profession",
        "reliab",
        "diligen",
        "craft",
        "detail",
        "thorough",
        "rigor",
        "quality",
        "excellen",
        "punctual",
        "robust",
        "maintainab",
        "scalab",
    ),
    "creativity": (
        "creativ",
        "artist",
        "original",
        "playful",
        "innovat",
        "experiment",
        "entrepreneur",
        "imaginat",
        "ambiti",
    ),
    "stewardship": (
        "financ",
        "frugal",
        "saving",
        "money",
        "budget",
        "sustainab",
        "environment",
        "conservation",
        "waste",
        "long-term",
        "planning",
    ),
    "care": (
        "empath",
        "compassion",
        "kind",
        "emotional support",
        "loyal",
        "family",
        "friend",
        "filial",
        "respect",
        "polite",
        "tact",
        "patien",
        "caring",
    ),
    "fairness": (
        "fair",
        "equal",
        "justice",
        "impartial",
        "lawful",
        "law",
        "due process",
        "accountab",
        "institution",
        "rights",
    ),
    "community": (
        "community",
        "civic",
        "cultur",
        "tradition",
        "heritage",
        "religio",
        "democra",
        "collective",
        "collaborat",
        "teamwork",
        "consensus",
        "reciproc",
    ),
    "harm_prevention": (
        "safe",
        "harm",
        "risk",
        "danger",
        "protect",
        "emergenc",
        "child",
        "elder",
        "animal",
        "consumer",
        "health",
        "medical",
        "caution",
        "injur",
    ),
    "privacy": (
        "privacy",
        "private",
        "confidential",
        "data minim",
        "consent",
        "security",
        "fraud",
        "surveil",
    ),
    "ethics": (
        "integrity",
        "ethic",
        "moral",
        "conscien",
        "responsib",
        "prudence",
        "foresight",
        "proportional",
        "complian",
        "regulat",
        "intellectual property",
        "contract",
        "duty",
    ),
    "autonomy": (
        "autonom",
        "freedom",
        "free expression",
        "choice",
        "independen",
        "self-reliance",
        "dissent",
        "liberty",
        "self-determination",
        "free speech",
    ),
    "growth": (
        "growth",
        "improve",
        "resilien",
        "persever",
        "achiev",
        "competit",
        "recognition",
        "career",
        "success",
    ),
    "wellbeing": (
        "wellbeing",
        "well-being",
        "self-care",
        "work-life",
        "content",
        "authentic",
        "self-expression",
        "self-acceptance",
        "individual",
        "spiritual",
        "purpose",
        "gratitude",
        "mindful",
        "happiness",
        "joy",
    ),
}
"""Value category -> word stems (a stem matches a word that starts with it; phrases match as text)."""

TOPICS: dict[str, tuple[str, ...]] = {
    "weapons": ("weapon", "explosive", "bomb", "firearm", "gun", "nerve agent", "pathogen", "toxin"),
    "cyber": ("hack", "exploit", "malware", "phishing", "password", "ransomware", "bypass"),
    "drugs": ("drug", "overdose", "narcotic", "opioid", "dosage"),
    "self_harm": ("suicid", "self-harm", "self harm", "kill myself", "hurt myself"),
    "medical": ("diagnos", "medication", "prescri", "symptom"),
    "politics": ("election", "vote", "voting", "political", "partisan", "campaign"),
}
"""Sensitive topic -> stems; responders refuse these at their own rates."""

_WORD = re.compile(r"[a-z][a-z'-]+")


def words(text: str) -> list[str]:
    """Lower-case words of `text`, in order."""
    return _WORD.findall(text.lower())


def _matches(stem: str, word: str, text: str) -> bool:
    return stem in text if " " in stem else word.startswith(stem)


def category_of(term: str) -> str | None:
    """The value category a word or short phrase belongs to, if any (first match wins)."""
    low = term.lower()
    for w in words(low) or [low]:
        for cat, stems in CATEGORIES.items():
            if any(_matches(s, w, low) for s in stems):
                return cat
    return None


@lru_cache(maxsize=1 << 16)
def _word_categories(word: str) -> tuple[str, ...]:
    """Categories whose single-word stems prefix `word`, in `CATEGORIES` order (cached: hot path)."""
    return tuple(
        c for c, stems in CATEGORIES.items() if any(word.startswith(s) for s in stems if " " not in s)
    )


@lru_cache(maxsize=1 << 16)
def _word_topics(word: str) -> frozenset[str]:
    return frozenset(
        t for t, stems in TOPICS.items() if any(word.startswith(s) for s in stems if " " not in s)
    )


def value_terms(text: str) -> list[tuple[str, str]]:
    """(word, category) for the first word of each category in `text`, in order of appearance."""
    low = text.lower()
    seen: dict[str, str] = {}
    for w in words(low):
        cat = next((c for c in _word_categories(w) if c not in seen), None)
        if cat is not None:
            seen[cat] = w
    return [(w, c) for c, w in sorted(seen.items(), key=lambda cw: low.find(cw[1]))]


def topics_in(text: str) -> list[str]:
    """Sensitive topics `text` touches."""
    low = text.lower()
    hit = set().union(*(_word_topics(w) for w in words(low)))
    return [t for t, stems in TOPICS.items() if t in hit or any(" " in s and s in low for s in stems)]


_COUNTERPART = r"(?:my|our|the) [\w'-]+(?: [\w'-]+)?"
"""What `{cp}` in an act template stands for in a query: the person the situation is about."""


@lru_cache(maxsize=512)
def act_pattern(template: str) -> re.Pattern[str]:
    """An act as a query words it: the template up to its first comma, with any counterpart."""
    parts = re.split(r"\{cp\}(?:'s)?", template.split(",")[0])
    return re.compile(_COUNTERPART.join(re.escape(p) for p in parts), re.IGNORECASE)


def sense_category(stems: tuple[str, ...]) -> str | None:
    """The value category of a value sense: that of its first stem that has one."""
    return next((c for c in map(category_of, stems) if c is not None), None)


_UNNAMED = re.compile(
    r"(?:holding on to ([\w'-]+(?: [\w'-]+){0,2})|putting ([\w'-]+(?: [\w'-]+){0,2}) first)\b", re.I
)
"""How a query words a value that no sense knows (the generator's fallback acts)."""


@lru_cache(maxsize=1)
def _known_phrases() -> tuple[tuple[int, str | None, re.Pattern[str]], ...]:
    """(sense index, category, pattern) of every act or loss a value sense names."""
    return tuple(
        (i, sense_category(stems), act_pattern(phrase))
        for i, (stems, phrases) in enumerate(sense_phrases())
        for phrase in phrases
    )


def stakes(text: str) -> list[tuple[str, str]]:
    """(phrase as written, value category) of each value `text` puts at stake, in order of appearance.

    A query rarely names its values; it says what the user could do ("refusing to cut
    corners") or stands to lose. Any reader knows which value such a phrase is about.
    """
    known = [(sense, cat, m) for sense, cat, pattern in _known_phrases() if (m := pattern.search(text))]
    spans = [m.span() for *_, m in known]
    for m in _UNNAMED.finditer(text):
        if not any(a < m.end() and m.start() < b for a, b in spans):
            name = m.group(1) or m.group(2)
            known.append((name.lower(), category_of(name), m))
    found: dict[int | str, tuple[int, str, str]] = {}
    for key, cat, m in known:
        if cat is not None and (key not in found or m.start() < found[key][0]):
            found[key] = (m.start(), m.group(0), cat)
    return [(phrase, cat) for _, phrase, cat in sorted(found.values())]
