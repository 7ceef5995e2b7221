"""Disagreement D(x, M) per model subset, high-disagreement flags and bins (METHOD.md §5).

D(x, M) is the larger of the two standard deviations (one per value) of the positions
(0..6) the models in M took on scenario x. The scores table is long (one row per
scenario, model and value slot); we pivot it once into a dense positions array
(scenarios x models x 2, NaN where a score is missing) and compute every subset from
that with vectorised numpy, which keeps 410k scenarios x 12 models x 6 subsets to a
couple of seconds.

Missing scores: a model without a position on a value (its scoring failed or was
unparseable) is left out of that value's std, so D is taken over the models present;
`n_models` records how many of the subset's models have both positions. A value with
fewer than `min_models` positions gets a null std, and when both are null, D, `high`
and `bin` are null: too few models to say anything.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import polars as pl
import pyarrow as pa

from actors.errors import ConfigError, SpecstressError
from jobs.paper.models import PAPER_MODELS

StdKind = Literal["population", "sample"]

MODEL_KEYS = PAPER_MODELS

DEFAULT_SUBSETS: dict[str, tuple[str, ...]] = {
    "all": MODEL_KEYS,
    "claude": ("claude_opus_4", "claude_sonnet_4", "claude_3_7_sonnet", "claude_3_5_sonnet", "claude_opus_3"),
    "openai": ("gpt_4_1", "gpt_4_1_mini", "gpt_4o", "o3", "o4_mini"),
    "opus4_vs_sonnet4": ("claude_opus_4", "claude_sonnet_4"),
    "gpt41_vs_mini": ("gpt_4_1", "gpt_4_1_mini"),
    "o3_vs_o4mini": ("o3", "o4_mini"),
}
"""METHOD.md §5's six subsets; names follow the released dataset's split names."""

BIN_EDGES: tuple[float, ...] = (0.0, 1.0, 1.5, 2.0, 2.5)
"""Lower edges of the bins [0,1), [1,1.5), [1.5,2), [2,2.5), [2.5,3]. Population std of
positions 0..6 is at most 3; a sample std above 3 (possible for 2 models) lands in the last bin."""

BIN_LABELS: tuple[str, ...] = ("[0,1)", "[1,1.5)", "[1.5,2)", "[2,2.5)", "[2.5,3]")

SCORES_SCHEMA = pa.schema(
    [
        pa.field("scenario_id", pa.string(), nullable=False),
        pa.field("model", pa.string(), nullable=False),
        pa.field("value_slot", pa.int8(), nullable=False),  # 1 or 2
        pa.field("value", pa.string()),
        pa.field("position", pa.int8()),  # 0..6 on the value's spectrum
        pa.field("confidence", pa.float32()),  # 0..1
        pa.field("reasoning", pa.string()),
    ]
)
"""The long scores table this module reads (only scenario_id, model, value_slot, position are used)."""

DISAGREEMENT_SCHEMA = pa.schema(
    [
        pa.field("scenario_id", pa.string(), nullable=False),
        pa.field("subset", pa.string(), nullable=False),
        pa.field("n_models", pa.int32(), nullable=False),  # subset models with both positions
        pa.field("d", pa.float64()),  # max(std_value1, std_value2); null with too few models
        pa.field("std_value1", pa.float64()),
        pa.field("std_value2", pa.float64()),
        pa.field("high", pa.bool_()),  # d >= high_threshold
        pa.field("bin", pa.string()),  # one of BIN_LABELS
    ]
)
"""`tables/disagreement.parquet`: one row per (scenario, subset)."""


@dataclass(frozen=True)
class DisagreementConfig:
    """Options of the disagreement computation."""

    subsets: Mapping[str, Sequence[str]] = field(default_factory=lambda: dict(DEFAULT_SUBSETS))
    """Subset name -> model keys."""
    std: StdKind = "population"
    """population (ddof=0) or sample (ddof=1) std; the paper does not say which."""
    high_threshold: float = 1.5
    """D at or above this is high disagreement (positions, 0..6 scale)."""
    min_models: int = 2
    """Fewest positions a value needs for its std; fewer gives null."""


@dataclass(frozen=True)
class PositionMatrix:
    """Scores pivoted wide: positions[s, m, v] for scenario s, model m, value slot v+1 (NaN: missing)."""

    scenario_ids: pl.Series
    models: tuple[str, ...]
    positions: np.ndarray  # float32 (n_scenarios, n_models, 2)


def position_matrix(scores: pl.DataFrame, models: Sequence[str] | None = None) -> PositionMatrix:
    """Pivot the long scores table into a dense positions array.

    Args:
        scores: long scores (scenario_id, model, value_slot, position; see SCORES_SCHEMA).
        models: the model axis; default: every model in `scores`, sorted. Rows of
            other models are ignored.

    Raises:
        SpecstressError: a (scenario, model, value slot) appears twice, or a slot is not 1 or 2.
    """
    need = ["scenario_id", "model", "value_slot", "position"]
    missing = [c for c in need if c not in scores.columns]
    if missing:
        raise SpecstressError(f"scores: missing columns {missing}")
    if models is None:
        models = tuple(sorted(scores["model"].unique().to_list()))
    models = tuple(models)
    lf = (
        scores.lazy()
        .select(need)
        .with_columns(
            _m=pl.col("model").replace_strict(
                list(models), list(range(len(models))), default=None, return_dtype=pl.Int32
            )
        )
        .drop_nulls("_m")
    )
    # The dense rank of a scenario id is its index in the sorted unique ids: one pass, no join.
    rows, id_frame = pl.collect_all(
        [
            lf.select(
                _s=pl.col("scenario_id").rank("dense").cast(pl.Int64) - 1,
                _m="_m",
                value_slot="value_slot",
                position=pl.col("position").cast(pl.Float32).fill_null(float("nan")),
            ),
            lf.select(pl.col("scenario_id").unique().sort()),
        ]
    )
    ids = id_frame["scenario_id"]
    slot = rows["value_slot"].to_numpy().astype(np.int64)
    if len(slot) and not ((slot == 1) | (slot == 2)).all():
        raise SpecstressError("scores: value_slot must be 1 or 2")
    pos = np.full((len(ids), len(models), 2), np.nan, dtype=np.float32)
    s, m = rows["_s"].to_numpy(), rows["_m"].to_numpy()
    flat = (s * len(models) + m) * 2 + (slot - 1)
    # Duplicates show as fewer distinct cells than rows; a mark per cell is O(n), a sort is not.
    seen = np.zeros(pos.size, dtype=bool)
    seen[flat] = True
    if np.count_nonzero(seen) != len(flat):
        raise SpecstressError("scores: a (scenario_id, model, value_slot) appears more than once")
    pos.reshape(-1)[flat] = rows["position"].to_numpy()
    return PositionMatrix(scenario_ids=ids, models=models, positions=pos)


def _std(p: np.ndarray, ddof: int, min_models: int) -> tuple[np.ndarray, np.ndarray]:
    """Std over axis 1 ignoring NaN, and the count; NaN where count < max(min_models, ddof + 1)."""
    present = ~np.isnan(p)
    cnt = present.sum(axis=1)
    filled = np.where(present, p, 0.0).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = filled.sum(axis=1) / cnt
        dev = np.where(present, filled - mean[:, None], 0.0)
        var = np.square(dev).sum(axis=1) / (cnt - ddof)
    std = np.sqrt(var)
    std[cnt < max(min_models, ddof + 1)] = np.nan
    return std, cnt


def bin_labels(d: np.ndarray) -> pl.Series:
    """The disagreement bin label of each D (null for NaN)."""
    idx = np.searchsorted(np.asarray(BIN_EDGES), np.nan_to_num(d, nan=0.0), side="right") - 1
    labels = pl.Series("bin", list(BIN_LABELS), dtype=pl.String).gather(np.clip(idx, 0, len(BIN_LABELS) - 1))
    return (
        pl.select(pl.when(pl.lit(pl.Series(np.isnan(d)))).then(None).otherwise(labels))
        .to_series()
        .rename("bin")
    )


def disagreement(
    scores: pl.DataFrame | PositionMatrix, config: DisagreementConfig | None = None
) -> pl.DataFrame:
    """D(x, M), the high flag and the bin for every scenario and configured subset.

    Args:
        scores: the long scores table, or a `PositionMatrix` already built from it.
        config: subsets, std kind, threshold and min_models.

    Returns:
        A frame in DISAGREEMENT_SCHEMA's columns, subsets in config order.
    """
    cfg = config or DisagreementConfig()
    if cfg.std not in ("population", "sample"):
        raise ConfigError(f"std: must be 'population' or 'sample', got {cfg.std!r}")
    if not cfg.subsets:
        raise ConfigError("subsets: at least one subset is needed")
    wanted = sorted({m for ms in cfg.subsets.values() for m in ms})
    pm = scores if isinstance(scores, PositionMatrix) else position_matrix(scores, wanted)
    col = {m: i for i, m in enumerate(pm.models)}
    ddof = 0 if cfg.std == "population" else 1
    frames = []
    for name, ms in cfg.subsets.items():
        unknown = [m for m in ms if m not in col]
        if unknown:
            raise ConfigError(f"subsets.{name}: models {unknown} have no scores")
        p = pm.positions[:, [col[m] for m in ms], :]
        s1, _ = _std(p[:, :, 0], ddof, cfg.min_models)
        s2, _ = _std(p[:, :, 1], ddof, cfg.min_models)
        d = np.fmax(s1, s2)
        n_models = (~np.isnan(p)).all(axis=2).sum(axis=1).astype(np.int32)
        frames.append(
            pl.DataFrame(
                {
                    "scenario_id": pm.scenario_ids,
                    "subset": pl.Series([name], dtype=pl.String).new_from_index(0, len(d)),
                    "n_models": n_models,
                    "d": pl.Series(d).fill_nan(None),
                    "std_value1": pl.Series(s1).fill_nan(None),
                    "std_value2": pl.Series(s2).fill_nan(None),
                    "bin": bin_labels(d),
                }
            ).with_columns(high=pl.col("d") >= cfg.high_threshold)
        )
    return pl.concat(frames).select(DISAGREEMENT_SCHEMA.names)


def d_over(
    scores: pl.DataFrame | PositionMatrix, models: Sequence[str], config: DisagreementConfig | None = None
) -> pl.DataFrame:
    """D over one group of models per scenario (scenario_id, d): `disagreement` for that group alone,
    with `config`'s std kind, threshold and min_models (its subsets are not used)."""
    one = replace(config or DisagreementConfig(), subsets={"d": tuple(models)})
    return disagreement(scores, one).select("scenario_id", "d")


def subset_counts(table: pl.DataFrame) -> pl.DataFrame:
    """Per subset: scenarios, high-disagreement scenarios and scenarios per bin (for the demo print)."""
    return (
        table.group_by("subset", maintain_order=True)
        .agg(
            pl.len().alias("n_scenarios"),
            pl.col("high").sum().alias("n_high"),
            *[(pl.col("bin") == b).sum().alias(b) for b in BIN_LABELS],
        )
        .with_columns(pl.col("n_high").cast(pl.Int64))
    )
