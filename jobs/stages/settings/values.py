"""Settings of the `values` stage: the listing model, the taxonomy and embedding phrases are matched with."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from actors.errors import ConfigError
from jobs.stages.settings.base import ModelView, StageSpec
from jobs.stages.settings.embeddings import EmbeddingsConf
from jobs.stages.settings.embeddings import check as embeddings_check
from jobs.stages.settings.judging import (
    JudgeCallConf,
    JudgedResponsesConf,
    ScopeConf,
    check_judge_settings,
    inherit_judged,
    judged_models,
)


@dataclass
class ValuesConf(ScopeConf, JudgeCallConf, JudgedResponsesConf):
    """Settings of the `values` stage (config section `stages.values`)."""

    model: str = "claude_opus_4"
    """Model key that lists the values (a strong model)."""
    max_values: int = 5
    """Most value phrases per response."""
    taxonomy_tree: str | None = None
    """values_tree.csv whose level-2 categories phrases are matched to; None: `stages.pairs.taxonomy.tree`
    (or the shipped demo taxonomy)."""
    embedding: EmbeddingsConf | None = None
    """Embedding backend for phrases and categories; None: the `embeddings` stage's settings."""
    top_categories: int = 10
    """Categories the co-occurrence matrices cover (the most frequent)."""


def check(vc: ValuesConf, models: Mapping[str, ModelView]) -> None:
    check_judge_settings("values", vc)
    judged_models("values", vc.models)
    if vc.max_values < 1 or vc.top_categories < 1:
        raise ConfigError("config key 'stages.values': max_values and top_categories must be >= 1")
    if vc.embedding is not None:
        embeddings_check(vc.embedding, models, "stages.values.embedding")


def inherit(vc: ValuesConf, stages: Any) -> None:
    """The judged models default to the sweep, the taxonomy to the pairs', the embedding to the stage's."""
    inherit_judged(vc, stages)
    vc.taxonomy_tree = vc.taxonomy_tree or stages.pairs.taxonomy.tree
    if vc.embedding is None:
        vc.embedding = copy.deepcopy(stages.embeddings)


STAGE_SPEC = StageSpec(
    name="values",
    settings=ValuesConf,
    reads=("disagreement", "scenarios", "responses"),
    writes=("value_expressions", "value_counts", "value_cooccurrence_pairs", "value_cooccurrence"),
    models=lambda vc: {
        "model": [vc.model],
        "models": list(vc.models or []),
        "embedding.model": [vc.embedding.model]
        if vc.embedding is not None and vc.embedding.backend == "api" and vc.embedding.model
        else [],
    },
    check=check,
    inherit=inherit,
)
