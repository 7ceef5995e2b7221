"""Settings of the `diversity` stage: the δ of the δ-diverse set, and where it is computed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from actors.errors import ConfigError
from jobs.stages.settings.base import ModelView, StageSpec

TABLE = "diversity"


@dataclass
class DiversityConf:
    """Settings of the `diversity` stage (config section `stages.diversity`)."""

    delta: float = 0.4
    """L2 threshold on unit vectors (the paper's 0.4)."""
    n_cells: int | None = None
    """k-means cells used to prune distance checks; None picks by size. Never changes the guarantees."""
    check_sample: int = 2000
    """Scenarios checked exactly for coverage and separation (reported in the summary); 0 skips."""
    device: str = "cpu"
    """cpu (FAISS cells prune the distance checks), or cuda: a brute-force scan on one GPU of the
    Ray cluster (`jobs.analysis.diversity_torch`), same guarantees."""


def check(dc: DiversityConf, models: Mapping[str, ModelView]) -> None:
    if not dc.delta > 0:
        raise ConfigError(f"config key 'stages.diversity.delta': must be > 0, got {dc.delta}")
    if dc.check_sample < 0:
        raise ConfigError(f"config key 'stages.diversity.check_sample': must be >= 0, got {dc.check_sample}")


STAGE_SPEC = StageSpec(
    name="diversity", settings=DiversityConf, reads=("scenario_embeddings",), writes=(TABLE,), check=check
)
