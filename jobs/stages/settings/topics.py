"""Settings of the `topics` stage: the labelling model and the topic list."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from actors.errors import ConfigError
from jobs.stages.settings.base import ModelView, StageSpec
from jobs.stages.settings.judging import JudgeCallConf, ScopeConf, check_judge_settings

DEFAULT_TOPICS: tuple[str, ...] = (
    "cyber security",
    "biological weapons",
    "chemical weapons",
    "politics",
    "child grooming",
    "mental illness",
    "philosophical reasoning",
    "ethics and moral reasoning",
)
"""The paper's eight topics."""


@dataclass
class TopicsConf(ScopeConf, JudgeCallConf):
    """Settings of the `topics` stage (config section `stages.topics`)."""

    model: str = "claude_sonnet_4"
    """Model key that labels the topics."""
    topics: list[str] = field(default_factory=lambda: list(DEFAULT_TOPICS))
    """Topic names (bring your own policy categories)."""


def check(tc: TopicsConf, models: Mapping[str, ModelView]) -> None:
    check_judge_settings("topics", tc)
    topics = list(tc.topics)
    if not topics or len(set(topics)) != len(topics) or any(not t.strip() for t in topics):
        raise ConfigError("config key 'stages.topics.topics': needs distinct, non-empty topic names")


STAGE_SPEC = StageSpec(
    name="topics",
    settings=TopicsConf,
    reads=("disagreement", "scenarios"),
    writes=("topics",),
    models=lambda tc: {"model": [tc.model]},
    check=check,
)
