"""Settings of the `refusals` stage: the judge of the refusal degree and what it judges."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from jobs.stages.settings.base import ModelView, StageSpec
from jobs.stages.settings.judging import (
    JudgeCallConf,
    JudgedResponsesConf,
    ScopeConf,
    check_judge_settings,
    inherit_judged,
    judged_models,
)


@dataclass
class RefusalsConf(ScopeConf, JudgeCallConf, JudgedResponsesConf):
    """Settings of the `refusals` stage (config section `stages.refusals`)."""

    model: str = "claude_sonnet_4"
    """Model key that judges the refusal degree."""


def check(rc: RefusalsConf, models: Mapping[str, ModelView]) -> None:
    check_judge_settings("refusals", rc)
    judged_models("refusals", rc.models)


STAGE_SPEC = StageSpec(
    name="refusals",
    settings=RefusalsConf,
    reads=("disagreement", "scenarios", "responses", "topics"),
    writes=("refusals", "refusal_rates"),
    models=lambda rc: {"model": [rc.model], "models": list(rc.models or [])},
    check=check,
    inherit=inherit_judged,
)
