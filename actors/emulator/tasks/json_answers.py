"""Shared by the judging personas: find the task prompt, answer in JSON, break it at the quirk rate.

A repair turn (a later user message quoting the validation error) is always answered
properly, as a model shown its mistake usually does.
"""

from __future__ import annotations

import json
import random
import re
from typing import Any

from actors.emulator.config import OutputQuirks
from actors.emulator.personas import EmulatedReply, EmulatedRequest

_REPAIR = re.compile(r"could not be used|not valid|invalid|wrong shape", re.IGNORECASE)
_TAG = "<{0}>\n(.*?)\n</{0}>"


def task_prompt(req: EmulatedRequest, marker: str) -> str | None:
    """The first user message containing `marker`, or None."""
    for role, text in req.messages:
        if role == "user" and marker in text:
            return text
    return None


def tagged(text: str, tag: str) -> str:
    """The text inside the first `<tag>` ... `</tag>` block ("" when absent)."""
    m = re.search(_TAG.format(tag), text, re.DOTALL)
    return m.group(1) if m else ""


def is_repair(req: EmulatedRequest) -> bool:
    return len(req.messages) > 1 and bool(_REPAIR.search(req.last_user))


def broken(good: dict[str, Any], rng: random.Random) -> str:
    """One realistic way of getting a JSON object wrong."""
    kind = rng.randrange(5)
    text = json.dumps(good)
    if kind == 0 or not good:
        return text[: max(1, len(text) // 2)]
    bad = dict(good)
    first = next(iter(bad))
    if kind == 1:
        return "Here is my assessment. " + " ".join(str(v) for v in bad.values())[:200]
    if kind == 2:
        bad.pop(first)
    elif kind == 3:
        bad["note"] = "see above"
    else:
        bad[first] = 42
    return json.dumps(bad)


def json_reply(
    good: dict[str, Any], req: EmulatedRequest, rng: random.Random, quirks: OutputQuirks, thinking: str = ""
) -> EmulatedReply:
    """`good` as a fenced JSON answer, or broken at the `malformed_json` rate (never on a repair
    turn, nor with a schema: structured outputs keep to it)."""
    if not is_repair(req) and req.schema is None and rng.random() < quirks.malformed_json:
        return EmulatedReply(broken(good, rng), thinking if req.thinking else "")
    return EmulatedReply("```json\n" + json.dumps(good, indent=1) + "\n```", thinking if req.thinking else "")
