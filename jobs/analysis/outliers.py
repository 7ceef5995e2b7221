"""Outlier responses: a model far from most of the others on a scenario (METHOD.md §5).

Two responses disagree significantly when their positions on a value differ by at
least `gap` (4). A response is an outlier when, on either value, it disagrees
significantly with at least ceil(share x (N - 1)) of the other N - 1 models; share
defaults to 9/11, the paper's 9 of 11. N counts the models that have a position on that
value for that scenario (missing scores are left out, as in `disagreement`), and a
value with fewer than `min_models` positions never makes an outlier.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import polars as pl
import pyarrow as pa

from actors.errors import ConfigError, SpecstressError
from jobs.analysis.disagreement import PositionMatrix, position_matrix

OUTLIER_SCHEMA = pa.schema(
    [
        pa.field("scenario_id", pa.string(), nullable=False),
        pa.field("model", pa.string(), nullable=False),
        pa.field("position_value1", pa.int8()),
        pa.field("position_value2", pa.int8()),
        pa.field("far_value1", pa.int32(), nullable=False),  # other models >= gap away on value 1
        pa.field("far_value2", pa.int32(), nullable=False),
        pa.field("required_value1", pa.int32(), nullable=False),  # ceil(share x (N1 - 1))
        pa.field("required_value2", pa.int32(), nullable=False),
        pa.field("outlier_value1", pa.bool_(), nullable=False),
        pa.field("outlier_value2", pa.bool_(), nullable=False),
    ]
)
"""`tables/outliers.parquet`: one row per outlier response."""

OUTLIER_COUNTS_SCHEMA = pa.schema(
    [
        pa.field("model", pa.string(), nullable=False),
        pa.field("n_responses", pa.int64(), nullable=False),  # scenarios with any position for the model
        pa.field("n_outliers", pa.int64(), nullable=False),
        pa.field("outlier_rate", pa.float64(), nullable=False),
    ]
)
"""`tables/outlier_counts.parquet`: per-model counts."""


@dataclass(frozen=True)
class OutlierConfig:
    """Options of the outlier rule."""

    gap: int = 4
    """Position difference (0..6 scale) that counts as significant disagreement."""
    share: Fraction = Fraction(9, 11)
    """Fraction of the other N - 1 models one must be far from; kept exact to avoid ceil(9.000001)."""
    min_models: int = 3
    """Fewest models with a position on a value for that value to yield outliers."""


POSITIONS = 7
"""Positions run 0..6 on each value's spectrum."""


def required_count(n_models: np.ndarray, share: Fraction) -> np.ndarray:
    """ceil(share x (N - 1)) in exact integer arithmetic."""
    num, den = share.numerator, share.denominator
    return -((-(n_models - 1) * num) // den)


def far_counts(p: np.ndarray, present: np.ndarray, gap: int) -> np.ndarray:
    """For each (scenario, model, value): how many models sit at least `gap` positions away.

    Positions are integers 0..6, so each (scenario, value) gets a 7-bin histogram; the
    models far from position q are those at or below q - gap plus those at or above
    q + gap, read off cumulative counts. That is O(S x M), where comparing every pair
    of models is O(S x M^2).
    """
    n_pos = POSITIONS
    s_n = p.shape[0]
    q = np.where(present, p, 0).astype(np.int64)  # (S, M, 2); absent entries masked below
    if q.size and (q.min() < 0 or q.max() >= n_pos or (q != np.where(present, p, 0)).any()):
        raise SpecstressError(f"scores: positions must be whole numbers 0..{n_pos - 1}")
    cell = (np.arange(s_n)[:, None, None] * 2 + np.arange(2)[None, None, :]) * n_pos + q
    hist = np.bincount(cell[present], minlength=s_n * 2 * n_pos).reshape(s_n, 2, n_pos)
    # below[s, v, k] = models with position < k, for k = 0..7.
    below = np.zeros((s_n, 2, n_pos + 1), dtype=np.int64)
    np.cumsum(hist, axis=2, out=below[:, :, 1:])
    total = below[:, :, n_pos]  # (S, 2)
    qt = q.transpose(0, 2, 1)  # (S, 2, M)
    low = np.take_along_axis(below, np.clip(qt - gap + 1, 0, n_pos), axis=2)
    high = total[:, :, None] - np.take_along_axis(below, np.clip(qt + gap, 0, n_pos), axis=2)
    return (low + high).transpose(0, 2, 1).astype(np.int32)


@dataclass(frozen=True)
class Outliers:
    """The outlier rows and per-model counts."""

    rows: pl.DataFrame
    counts: pl.DataFrame


def outliers(
    scores: pl.DataFrame | PositionMatrix,
    config: OutlierConfig | None = None,
    *,
    models: Sequence[str] | None = None,
) -> Outliers:
    """Find outlier responses over the models in `models` (default: every model scored).

    Args:
        scores: the long scores table, or a `PositionMatrix` built from it.
        config: gap, share and min_models.
        models: the N models compared; default all models in the table.
    """
    cfg = config or OutlierConfig()
    share = Fraction(cfg.share).limit_denominator(10_000)
    if not 0 < share <= 1:
        raise ConfigError(f"share: must be in (0, 1], got {cfg.share}")
    if cfg.gap < 1:
        raise ConfigError(f"gap: must be >= 1, got {cfg.gap}")
    pm = scores if isinstance(scores, PositionMatrix) else position_matrix(scores, models)
    if models is not None and tuple(models) != pm.models:
        col = {m: i for i, m in enumerate(pm.models)}
        pm = PositionMatrix(pm.scenario_ids, tuple(models), pm.positions[:, [col[m] for m in models], :])
    p = pm.positions  # (S, M, 2)
    present = ~np.isnan(p)
    n = present.sum(axis=1)  # (S, 2)
    far = far_counts(p, present, cfg.gap)
    required = required_count(n, share).astype(np.int32)  # (S, 2)
    ok_value = n >= max(cfg.min_models, 2)
    flag = present & (far >= required[:, None, :]) & ok_value[:, None, :]
    is_out = flag.any(axis=2)
    s_idx, m_idx = np.nonzero(is_out)

    def pos(v: int) -> pl.Series:
        vals = p[s_idx, m_idx, v]
        ints = pl.Series(np.where(np.isnan(vals), 0, vals).astype(np.int8))
        return pl.select(pl.when(pl.lit(pl.Series(np.isnan(vals)))).then(None).otherwise(ints)).to_series()

    model_names = pl.Series(list(pm.models), dtype=pl.String)
    rows = pl.DataFrame(
        {
            "scenario_id": pm.scenario_ids.gather(s_idx),
            "model": model_names.gather(m_idx),
            "position_value1": pos(0),
            "position_value2": pos(1),
            "far_value1": far[s_idx, m_idx, 0],
            "far_value2": far[s_idx, m_idx, 1],
            "required_value1": required[s_idx, 0],
            "required_value2": required[s_idx, 1],
            "outlier_value1": flag[s_idx, m_idx, 0],
            "outlier_value2": flag[s_idx, m_idx, 1],
        }
    )
    n_resp = present.any(axis=2).sum(axis=0)
    n_out = is_out.sum(axis=0)
    counts = pl.DataFrame(
        {
            "model": model_names,
            "n_responses": n_resp.astype(np.int64),
            "n_outliers": n_out.astype(np.int64),
            "outlier_rate": np.where(n_resp > 0, n_out / np.maximum(n_resp, 1), 0.0),
        }
    )
    return Outliers(rows=rows, counts=counts)
