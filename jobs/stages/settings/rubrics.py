"""Settings of the `rubrics` stage: the rubric model, its call settings and its scope."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from actors.errors import ConfigError
from jobs.conf.batching import RoutingConf
from jobs.stages.settings.answer_scope import check_scope, inherit_scope, scope_reads
from jobs.stages.settings.base import ModelView, StageSpec
from jobs.stages.settings.structured import StructuredConf, check_structured


@dataclass
class RubricsConf(RoutingConf, StructuredConf):
    """Settings of the `rubrics` stage (config section `stages.rubrics`)."""

    model: str = "claude_opus_4"
    """Model key that writes the rubrics (the paper: Claude 4 Opus)."""
    max_repairs: int = 1
    """Repair calls per pair after an invalid answer, before the failure is recorded."""
    max_tokens: int = 4000
    temperature: float | None = None
    reasoning_effort: str | None = None
    thinking_budget: int | None = None
    chunk_pairs: int = 20_000
    """Pairs handled per round of calls; bounds memory."""
    scope: str | None = None
    """diverse: pairs with a δ-diverse scenario; all: every pair; None: `stages.responses.scope`."""


def check(rc: RubricsConf, models: Mapping[str, ModelView]) -> None:
    if rc.max_repairs < 0 or rc.chunk_pairs < 1:
        raise ConfigError("config key 'stages.rubrics': max_repairs must be >= 0 and chunk_pairs >= 1")
    check_scope("rubrics", rc.scope)
    check_structured("rubrics", rc)


STAGE_SPEC = StageSpec(
    name="rubrics",
    settings=RubricsConf,
    reads=("scenarios",),
    writes=("rubrics",),
    models=lambda rc: {"model": [rc.model]},
    check=check,
    inherit=inherit_scope,
    reads_when=scope_reads,
)
