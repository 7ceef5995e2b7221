"""Settings the labelling stages (topics, refusals, compliance, values) share, and their checks.

What a scope selects and how the stages judge is `jobs/stages/judging.py`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from actors.errors import ConfigError
from jobs.stages.settings.structured import StructuredConf, check_structured

SCOPES = ("selected", "high", "all")


@dataclass
class ScopeConf:
    """Which scenarios a labelling stage judges (shared by the four labelling stages)."""

    scope: str = "selected"
    """selected: the weighted k-center selections of `subset` (the paper's labelled sets);
    high: the high-disagreement scenarios of `subset`; all: every scored scenario."""
    subset: str = "all"
    """Disagreement subset whose selections (`selected`) or high flag and D order (`high`) are used."""
    max_scenarios: int | None = None
    """Judge at most this many scenarios (first selected, or highest D first); None: no cap."""
    chunk_scenarios: int = 5_000
    """Scenarios whose calls are built, sent and written at a time; bounds memory at scale."""


@dataclass
class JudgeCallConf(StructuredConf):
    """Generation settings of a judging call (shared by the four labelling stages)."""

    max_repairs: int = 1
    """Repair calls after an invalid answer, before the failure is recorded."""
    max_tokens: int = 2000
    temperature: float | None = None
    reasoning_effort: str | None = None
    thinking_budget: int | None = None


@dataclass
class JudgedResponsesConf:
    """Which responses a stage judges (shared by refusals, compliance and values)."""

    models: list[str] | None = None
    """Answering models whose responses are judged; None means `stages.responses.models`
    (filled in when the config loads)."""
    sample: int = 0
    """Which response sample is judged."""


def inherit_judged(settings: JudgedResponsesConf, stages: Any) -> None:
    """The judged models default to the sweep."""
    if settings.models is None:
        settings.models = list(stages.responses.models)


def check_call(stage: str, jc: JudgeCallConf) -> None:
    if jc.max_repairs < 0 or jc.max_tokens < 1:
        raise ConfigError(f"config key 'stages.{stage}': max_repairs must be >= 0 and max_tokens >= 1")
    check_structured(stage, jc)


def check_scope(stage: str, sc: ScopeConf) -> None:
    if sc.scope not in SCOPES:
        raise ConfigError(f"config key 'stages.{stage}.scope': must be one of {SCOPES}, got '{sc.scope}'")
    if sc.max_scenarios is not None and sc.max_scenarios < 1:
        raise ConfigError(f"config key 'stages.{stage}.max_scenarios': must be >= 1 or null")
    if sc.chunk_scenarios < 1:
        raise ConfigError(f"config key 'stages.{stage}.chunk_scenarios': must be >= 1")


def check_judge_settings(stage: str, settings: Any) -> None:
    """Up-front checks of a scoped labelling stage's settings (topics, refusals, values)."""
    check_call(stage, settings)
    check_scope(stage, settings)


def judged_models(stage: str, models: Sequence[str] | None) -> list[str]:
    """The answering models a stage judges (the sweep's unless configured; see `inherit_judged`)."""
    chosen = list(models or [])
    if not chosen:
        raise ConfigError(f"config key 'stages.{stage}.models': no answering models to judge")
    return chosen
