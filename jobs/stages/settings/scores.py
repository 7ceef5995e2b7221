"""Settings of the `scores` stage: the scoring model, mode, labels, call settings and scope."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from actors.errors import ConfigError
from jobs.conf.batching import RoutingConf
from jobs.stages.settings.answer_scope import check_scope, inherit_scope, scope_reads
from jobs.stages.settings.base import ModelView, StageSpec
from jobs.stages.settings.structured import StructuredConf, check_structured

MODES = ("joint", "per_response")
LABELS = ("model", "anonymous")


@dataclass
class ScoresConf(RoutingConf, StructuredConf):
    """Settings of the `scores` stage (config section `stages.scores`)."""

    model: str = "claude_opus_4"
    """Model key that scores."""
    mode: str = "joint"
    """joint (one call per scenario, all responses) or per_response (one call per response)."""
    labels: str = "model"
    """How responses are labelled in the prompt: model (their keys) or anonymous (Response A...)."""
    shuffle: bool = False
    """Order responses by a draw seeded by scenario id and `seed`, not by model key."""
    models: list[str] | None = None
    """Models whose responses are scored; None means `stages.responses.models`."""
    max_repairs: int = 1
    """Repair calls after an invalid answer, before the failure is recorded."""
    max_tokens: int = 4000
    temperature: float | None = None
    reasoning_effort: str | None = None
    thinking_budget: int | None = None
    chunk_scenarios: int = 5_000
    """Scenarios handled per round of calls; bounds memory."""
    scope: str | None = None
    """diverse: the δ-diverse scenarios; all: every scenario; None: `stages.responses.scope`."""


def check(sc: ScoresConf, models: Mapping[str, ModelView]) -> None:
    if sc.mode not in MODES:
        raise ConfigError(f"config key 'stages.scores.mode': must be one of {MODES}, got '{sc.mode}'")
    if sc.labels not in LABELS:
        raise ConfigError(f"config key 'stages.scores.labels': must be one of {LABELS}, got '{sc.labels}'")
    if sc.max_repairs < 0 or sc.chunk_scenarios < 1:
        raise ConfigError("config key 'stages.scores': max_repairs must be >= 0 and chunk_scenarios >= 1")
    check_scope("scores", sc.scope)
    check_structured("scores", sc)


def inherit(sc: ScoresConf, stages: Any) -> None:
    """The scored models and the scope default to the responses stage's."""
    if sc.models is None:
        sc.models = list(stages.responses.models)
    inherit_scope(sc, stages)


STAGE_SPEC = StageSpec(
    name="scores",
    settings=ScoresConf,
    reads=("scenarios", "responses", "rubrics"),
    writes=("scores",),
    models=lambda sc: {"model": [sc.model], "models": list(sc.models or [])},
    check=check,
    inherit=inherit,
    reads_when=scope_reads,
)
