"""Settings of the `pairs` stage: where the taxonomy comes from and how pairs are drawn."""

from __future__ import annotations

from dataclasses import dataclass, field

from jobs.stages.settings.base import StageSpec


@dataclass
class TaxonomyConf:
    """Where the value taxonomy comes from; both null means the shipped demo taxonomy."""

    tree: str | None = None
    """Path of values_tree.csv (Values-in-the-Wild format)."""
    frequencies: str | None = None
    """Path of values_frequencies.csv."""


@dataclass
class PairsConf:
    """Settings of the `pairs` stage (config section `stages.pairs`)."""

    taxonomy: TaxonomyConf = field(default_factory=TaxonomyConf)
    n_pairs: int = 150_000
    """Pairs to draw; growing it later extends the earlier pairs, never reshuffles them."""
    weighting: str = "uniform"
    """uniform, or frequency (P(value) proportional to its frequency)."""
    exclude_same: str | None = None
    """Skip pairs inside one level-1 cluster (l1) or level-2 category (l2); null keeps all."""


STAGE_SPEC = StageSpec(name="pairs", settings=PairsConf, reads=(), writes=("pairs",))
