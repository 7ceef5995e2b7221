"""The `structured` setting of the stages that ask for JSON (rubrics, scores, the four judges).

What the mode does to calls is `jobs/stages/structured.py`'s; this is the setting and its check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from actors.errors import ConfigError
from jobs.stages.settings.keyed import KeyedSetting

MODES = ("auto", "off")


@dataclass
class StructuredConf:
    """Whether a stage's calls send the JSON shape they ask for (config key `stages.<stage>.structured`)."""

    structured: str | None = None
    """auto: send the answer's JSON Schema where the wire format has structured outputs, and
    fall back to plain prompting where a model refuses it; off: plain prompting only. None:
    the mode this run directory's stage last ran with (`off` for a stage run before the
    setting existed), `auto` for a stage that has not run. Changing it changes the call keys."""

    KEYED: ClassVar[tuple[KeyedSetting, ...]] = (KeyedSetting("structured", before="off", fresh="auto"),)

    def __post_init__(self) -> None:
        # YAML 1.1 reads a bare `off` as false, which reaches a string field as "False".
        if self.structured in ("False", "false"):
            self.structured = "off"


def check_structured(stage: str, settings: StructuredConf) -> None:
    if settings.structured is not None and settings.structured not in MODES:
        raise ConfigError(
            f"config key 'stages.{stage}.structured': must be one of {MODES}, got '{settings.structured}'"
        )
