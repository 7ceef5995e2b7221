"""The stages' specs in pipeline order, and what follows from them: the `stages:` schema and its checks.

`jobs/stages/registry.py` pairs each spec with the stage's entry points; loading a config needs
only this module, so a config error is found before any stage module is imported.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field, make_dataclass
from typing import Any

from actors.errors import ConfigError
from jobs.stages.settings import (
    compliance,
    disagreement,
    diversity,
    embeddings,
    pairs,
    refusals,
    responses,
    rubrics,
    scenarios,
    scores,
    topics,
    values,
)
from jobs.stages.settings.base import ModelView, StageSpec

STAGE_SPECS: tuple[StageSpec[Any], ...] = (
    pairs.STAGE_SPEC,
    scenarios.STAGE_SPEC,
    embeddings.STAGE_SPEC,
    diversity.STAGE_SPEC,
    responses.STAGE_SPEC,
    rubrics.STAGE_SPEC,
    scores.STAGE_SPEC,
    disagreement.STAGE_SPEC,
    topics.STAGE_SPEC,
    refusals.STAGE_SPEC,
    compliance.STAGE_SPEC,
    values.STAGE_SPEC,
)
BY_NAME: dict[str, StageSpec[Any]] = {s.name: s for s in STAGE_SPECS}
WRITER: dict[str, str] = {table: s.name for s in STAGE_SPECS for table in s.writes}
"""Table -> the stage that writes it."""

StagesConf = make_dataclass(
    "StagesConf",
    [(s.name, s.settings, field(default_factory=s.settings)) for s in STAGE_SPECS],
)
"""The `stages:` section: one field per stage, typed by the stage's own settings record."""


def check_stages(stages: Any, pipeline: list[str], models: Mapping[str, ModelView]) -> None:
    """At load: defaults taken from other stages filled in, then, for the stages of the pipeline,
    the model keys they name and their own checks. Raises `ConfigError` naming the key."""
    unknown = [n for n in pipeline if n not in BY_NAME]
    if unknown:
        raise ConfigError(f"config key 'pipeline': unknown stage(s) {unknown}; known: {sorted(BY_NAME)}")
    for s in STAGE_SPECS:
        s.inherit(getattr(stages, s.name), stages)
    check_order(stages, pipeline)
    for name in pipeline:
        s = BY_NAME[name]
        settings = getattr(stages, name)
        for key, keys in s.models(settings).items():
            absent = sorted(set(keys) - set(models))
            if absent:
                raise ConfigError(
                    f"config key 'stages.{name}.{key}': unknown model key(s) {absent}; known: {sorted(models)}"
                )
        s.check(settings, models)


def check_order(stages: Any, pipeline: list[str]) -> None:
    """Every table a stage of `pipeline` reads is written by a stage before it, or by none of the
    pipeline (an earlier session may have written it; the stage says so when it is absent)."""
    position = {name: i for i, name in enumerate(pipeline)}
    for i, name in enumerate(pipeline):
        for table, setting in BY_NAME[name].tables_read(getattr(stages, name)).items():
            writer = WRITER.get(table)
            if writer is None or position.get(writer, -1) <= i:
                continue
            because = f" (stages.{name}.{setting} makes it read it)" if setting else ""
            alternative = f", or change stages.{name}.{setting}" if setting else ""
            raise ConfigError(
                f"config key 'pipeline': stage '{name}' reads table '{table}'{because}, which stage "
                f"'{writer}' writes after it: list '{writer}' before '{name}'{alternative}"
            )
