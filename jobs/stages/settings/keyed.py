"""Settings that are part of a stage's call keys, so a run directory keeps what its calls were made with.

Changing such a setting changes every request of the stage, so a resume that took a new
default would pay again for answers the store holds. Left unset (None), each takes the value
the stage last ran with in this run directory, `before` for a stage run by a release without
the setting, and `fresh` for a stage that has not run (`jobs.context.resolve_keyed`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class KeyedSetting:
    """One such setting of a stage's settings record (listed in the record's `KEYED`)."""

    name: str
    before: Any
    """What a stage that ran before the setting existed ran with."""
    fresh: Any
    """What a stage that has not run in this run directory gets."""


def keyed_settings(settings: object) -> tuple[KeyedSetting, ...]:
    """The keyed settings of a stage's settings record (none for most stages)."""
    return tuple(getattr(type(settings), "KEYED", ()))
