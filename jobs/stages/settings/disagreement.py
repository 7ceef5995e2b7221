"""Settings of the `disagreement` stage: subsets, thresholds, the k-center selection and outliers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from actors.errors import ConfigError
from jobs.stages.settings.base import ModelView, StageSpec

STD_KINDS = ("population", "sample")


@dataclass
class DisagreementConf:
    """Settings of the `disagreement` stage (config section `stages.disagreement`)."""

    subsets: dict[str, list[str]] | None = None
    """Subset name -> model keys; None: METHOD.md §5's six, restricted to the models scored."""
    std: str = "population"
    """population (ddof 0) or sample (ddof 1) standard deviation; the paper does not say."""
    high_threshold: float = 1.5
    """D at or above this is high disagreement."""
    min_models: int = 2
    """Fewest positions a value needs for its std."""
    sample: int = 0
    """Which response sample is analysed when `stages.responses.samples` > 1."""
    diverse_only: bool = False
    """Analyse only the δ-diverse scenarios (needs the diversity stage)."""
    threshold: float = 0.8
    """Weighted k-center stops once every weighted distance is below this (the paper's 0.8)."""
    k: int | None = None
    """Optional cap on picks per subset."""
    use_ray: bool = True
    """Select each subset in its own Ray task (spread over a cluster's nodes)."""
    gap: int = 4
    """Outliers: a position difference of at least this is a significant disagreement."""
    share: float = 9 / 11
    """Outliers: share of the other N - 1 models a response must disagree with (the paper: 9 of 11)."""
    outlier_min_models: int = 3
    """Outliers: fewest models with a position on a value for it to yield outliers."""


def check(dc: DisagreementConf, models: Mapping[str, ModelView]) -> None:
    key = "config key 'stages.disagreement"
    if dc.std not in STD_KINDS:
        raise ConfigError(f"{key}.std': must be one of {STD_KINDS}, got '{dc.std}'")
    if dc.high_threshold < 0 or dc.threshold < 0:
        raise ConfigError(f"{key}': high_threshold and threshold must be >= 0")
    if dc.k is not None and dc.k < 1:
        raise ConfigError(f"{key}.k': must be >= 1 or null, got {dc.k}")
    if dc.gap < 1:
        raise ConfigError(f"{key}.gap': must be >= 1, got {dc.gap}")
    if not 0 < dc.share <= 1:
        raise ConfigError(f"{key}.share': must be in (0, 1], got {dc.share}")
    if dc.min_models < 1 or dc.outlier_min_models < 2:
        raise ConfigError(f"{key}': min_models must be >= 1 and outlier_min_models >= 2")


STAGE_SPEC = StageSpec(
    name="disagreement",
    settings=DisagreementConf,
    reads=("scores", "scenario_embeddings"),
    writes=("disagreement", "selections", "outliers", "outlier_counts"),
    models=lambda dc: {"subsets": [m for ms in (dc.subsets or {}).values() for m in ms]},
    check=check,
    reads_when=lambda dc: {"diversity": "diverse_only"} if dc.diverse_only else {},
)
