"""Sample pairs of distinct leaf values, the seeds of every later stage (METHOD.md §1).

Sampling is sequential rejection from one seeded stream: candidate ``k`` is two
independent draws from the value distribution, taken from the ``2k``-th and
``2k+1``-th uniforms of ``numpy.random.default_rng(seed)``. A candidate is kept when
its values differ, are not in the same excluded cluster and form an unordered pair not
kept before. Each candidate's fate depends only on the candidates before it, so the
first ``n`` pairs of a run asking for ``N > n`` are exactly the pairs of a run asking
for ``n``, and the batch size used to vectorise the draws cannot change the result.

``value1`` is the value drawn first. Drawing order, unlike sorting, keeps which value
becomes ``value1`` (the one later nudges lean towards) free of alphabetical bias.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

import numpy as np
import polars as pl
import pyarrow as pa

from actors.errors import ConfigError
from jobs.stages.base import Stage, StageContext
from jobs.stages.settings.pairs import STAGE_SPEC, PairsConf, TaxonomyConf
from jobs.stages.tables import write_table
from jobs.stages.taxonomy import LEAF_COLUMNS, demo_taxonomy_paths, load_taxonomy

Weighting = Literal["uniform", "frequency"]
ExcludeSame = Literal[None, "l1", "l2"]

PAIRS_SCHEMA = pa.schema(
    [
        pa.field("pair_id", pa.string(), nullable=False),  # see `pair_id`
        pa.field("rank", pa.int64(), nullable=False),  # 0-based draw order
        pa.field("value1", pa.string(), nullable=False),  # the value drawn first
        pa.field("value2", pa.string(), nullable=False),
        pa.field("value1_l1", pa.string(), nullable=False),  # level-1 cluster names
        pa.field("value2_l1", pa.string(), nullable=False),
        pa.field("value1_l2", pa.string(), nullable=False),  # level-2 category names
        pa.field("value2_l2", pa.string(), nullable=False),
        pa.field("value1_l3", pa.string(), nullable=False),  # top category names
        pa.field("value2_l3", pa.string(), nullable=False),
    ]
)


_EXCLUSION_SCOPE: dict[str | None, str] = {
    None: "",
    "l1": " in different level-1 clusters",
    "l2": " in different level-2 categories",
}
_MIN_BATCH = 1 << 12
_MAX_BATCH = 1 << 20
# Give up after this many candidates per requested pair (and at least _MIN_DRAW_CAP), so
# that asking for nearly every pair of a skewed distribution fails instead of hanging.
_DRAWS_PER_PAIR = 50
_MIN_DRAW_CAP = 10_000_000


def pair_id(value_a: str, value_b: str) -> str:
    """A stable id for the unordered pair of two value names: 16 hex digits of BLAKE2b.

    >>> pair_id("honesty", "kindness") == pair_id("kindness", "honesty")
    True
    """
    first, second = sorted((value_a, value_b))
    return hashlib.blake2b(f"{first}\x1f{second}".encode(), digest_size=8).hexdigest()


def count_possible_pairs(
    values: pl.DataFrame, *, weighting: Weighting, exclude_same: ExcludeSame = None
) -> int:
    """How many distinct unordered pairs `sample_pairs` can return for these arguments.

    Values with zero frequency never occur under frequency weighting, and pairs inside
    one excluded cluster never occur at all.
    """
    eligible = _eligible(values, weighting)
    return _possible(_group_codes(eligible, exclude_same), eligible.height)


def sample_pairs(
    values: pl.DataFrame,
    n: int,
    *,
    seed: int,
    weighting: Weighting,
    exclude_same: ExcludeSame = None,
) -> pl.DataFrame:
    """Draw ``n`` distinct unordered pairs of distinct values.

    The result depends on the set of rows of ``values``, not their order (they are
    sorted by name first), and its first ``k`` rows do not depend on ``n`` for ``k <= n``.

    Args:
        values: leaf values as returned by `jobs.stages.taxonomy.load_taxonomy`; needs
            `jobs.stages.taxonomy.LEAF_COLUMNS` and unique ``value`` names.
        n: number of pairs to return.
        seed: seed of the single random stream.
        weighting: ``"uniform"`` gives each value equal probability per draw;
            ``"frequency"`` makes P(value) proportional to ``freq``.
        exclude_same: reject pairs whose values share a level-1 cluster (``"l1"``) or a
            level-2 category (``"l2"``); None keeps every pair of distinct values.

    Returns:
        A frame with the columns of `PAIRS_SCHEMA`, ``rank`` 0..n-1 in draw order.

    Raises:
        ConfigError: a bad ``n``, ``weighting`` or ``exclude_same``; ``n`` larger than the
            number of possible pairs; or, under skewed weights, ``n`` so close to that
            number that the draw cap is reached first.
        ValueError: ``values`` lacks a column, repeats a name or has a bad ``freq``.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ConfigError(f"n must be a non-negative integer, got {n!r}")
    if weighting not in ("uniform", "frequency"):
        raise ConfigError(f"weighting must be 'uniform' or 'frequency', got {weighting!r}")
    if exclude_same not in (None, "l1", "l2"):
        raise ConfigError(f"exclude_same must be None, 'l1' or 'l2', got {exclude_same!r}")
    eligible = _eligible(values, weighting)
    groups = _group_codes(eligible, exclude_same)
    possible = _possible(groups, eligible.height)
    if n > possible:
        scope = _EXCLUSION_SCOPE[exclude_same]
        among = " with freq > 0" if weighting == "frequency" else ""
        raise ConfigError(
            f"n={n} exceeds the {possible} possible pairs of distinct values{scope} "
            f"among the {eligible.height} values{among}"
        )
    weights = eligible["freq"].to_numpy() if weighting == "frequency" else np.ones(eligible.height)
    rng = np.random.default_rng(seed)
    first, second = _draw_pairs(np.cumsum(weights, dtype=np.float64), groups, n, rng)
    return _pairs_frame(eligible, first, second)


def load_values(tc: TaxonomyConf) -> pl.DataFrame:
    """The configured taxonomy's leaf values (the demo taxonomy when no paths are given)."""
    if (tc.tree is None) != (tc.frequencies is None):
        raise ConfigError("config key 'stages.pairs.taxonomy': give both tree and frequencies, or neither")
    tree, freqs = (tc.tree, tc.frequencies) if tc.tree is not None else demo_taxonomy_paths()
    return load_taxonomy(tree, freqs)  # type: ignore[arg-type]


def _sample(ctx: StageContext[PairsConf]) -> tuple[pl.DataFrame, int]:
    """The pairs the settings draw, and how many values they were drawn from."""
    pc_ = ctx.settings
    values = load_values(pc_.taxonomy)
    pairs = sample_pairs(
        values,
        pc_.n_pairs,
        seed=ctx.seed,
        weighting=pc_.weighting,  # type: ignore[arg-type]
        exclude_same=pc_.exclude_same,  # type: ignore[arg-type]
    )
    return pairs, values.height


def preview(ctx: StageContext[PairsConf]) -> dict[str, pl.DataFrame]:
    """The pairs table, from config alone: an estimate prices the scenarios of these pairs."""
    return {"pairs": _sample(ctx)[0]}


def run(ctx: StageContext[PairsConf]) -> dict[str, Any]:
    """Stage entry: sample the pairs and write `tables/pairs.parquet`."""
    pairs, n_values = _sample(ctx)
    write_table(ctx.run, "pairs", pairs, PAIRS_SCHEMA)
    return {"values": n_values, "pairs": pairs.height, "weighting": ctx.settings.weighting}


def _eligible(values: pl.DataFrame, weighting: Weighting) -> pl.DataFrame:
    """Check ``values`` and return the rows that can be drawn, sorted by name."""
    missing = [name for name in LEAF_COLUMNS if name not in values.columns]
    if missing:
        raise ValueError(f"values lacks column(s) {', '.join(missing)}")
    duplicated = values.filter(pl.col("value").is_duplicated())["value"].unique().sort()
    if duplicated.len():
        raise ValueError(f"values repeats name(s) {', '.join(map(repr, duplicated.head(5)))}")
    values = values.sort("value")
    if weighting == "uniform":
        return values
    freq = values["freq"].cast(pl.Float64)
    bad = values.filter(freq.is_null() | ~freq.is_finite() | (freq < 0))
    if bad.height:
        raise ValueError(f"value {bad['value'][0]!r} has freq {bad['freq'][0]!r}; need a finite number >= 0")
    return values.with_columns(freq).filter(pl.col("freq") > 0)


def _group_codes(values: pl.DataFrame, exclude_same: ExcludeSame) -> np.ndarray | None:
    """Integer code of each value's excluded cluster, or None when nothing is excluded."""
    if exclude_same is None:
        return None
    _, codes = np.unique(values[f"{exclude_same}_id"].to_numpy(), return_inverse=True)
    return codes.astype(np.int64)


def _possible(groups: np.ndarray | None, m: int) -> int:
    """Unordered pairs of ``m`` values, less those inside one group."""
    total = m * (m - 1) // 2
    if groups is None:
        return total
    return total - sum(size * (size - 1) // 2 for size in np.bincount(groups).tolist())


def _draw_pairs(
    cumulative: np.ndarray,
    groups: np.ndarray | None,
    n: int,
    rng: np.random.Generator,
    *,
    batch_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the first ``n`` accepted candidates of the stream (see the module docstring).

    ``cumulative`` is the running sum of positive weights. Batches only vectorise the
    loop: ``rng.random`` yields the same uniforms however they are chunked, and within a
    batch candidates are accepted in draw order, so ``batch_size`` never changes the result.
    """
    m = cumulative.size
    total = cumulative[-1] if m else 0.0
    seen = np.empty(0, dtype=np.int64)  # sorted keys a * m + b (a < b) of kept pairs
    kept_first: list[np.ndarray] = []
    kept_second: list[np.ndarray] = []
    found = 0
    drawn = 0
    cap = max(_MIN_DRAW_CAP, _DRAWS_PER_PAIR * n)
    while found < n:
        if drawn >= cap:
            raise ConfigError(
                f"found only {found} of n={n} distinct pairs in {drawn} draws; n is too close to the "
                "number of possible pairs for these weights (lower n or use uniform weighting)"
            )
        size = batch_size or min(max(2 * (n - found), _MIN_BATCH), _MAX_BATCH)
        drawn += size
        # Inverse-CDF lookup; side="right" never lands on a zero-weight step, and the
        # clip guards against u * total rounding up to total.
        picks = np.searchsorted(cumulative, rng.random((size, 2)) * total, side="right")
        picks = np.minimum(picks, m - 1)
        a, b = picks[:, 0], picks[:, 1]
        ok = a != b
        if groups is not None:
            ok &= groups[a] != groups[b]
        keys = np.minimum(a, b) * m + np.maximum(a, b)
        candidates = np.flatnonzero(ok)
        _, first_seen = np.unique(keys[candidates], return_index=True)
        candidates = np.sort(candidates[first_seen])
        if seen.size:
            at = np.minimum(np.searchsorted(seen, keys[candidates]), seen.size - 1)
            candidates = candidates[seen[at] != keys[candidates]]
        candidates = candidates[: n - found]
        kept_first.append(a[candidates])
        kept_second.append(b[candidates])
        seen = np.sort(np.concatenate([seen, keys[candidates]]))
        found += candidates.size
    if not kept_first:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    return np.concatenate(kept_first), np.concatenate(kept_second)


def _pairs_frame(values: pl.DataFrame, first: np.ndarray, second: np.ndarray) -> pl.DataFrame:
    """Build the pairs table from the row indices of each pair's two values."""
    one = values[first]
    two = values[second]
    ids = [pair_id(a, b) for a, b in zip(one["value"], two["value"], strict=True)]
    return pl.DataFrame(
        {
            "pair_id": pl.Series(ids, dtype=pl.String),
            "rank": pl.int_range(first.size, eager=True, dtype=pl.Int64),
            "value1": one["value"],
            "value2": two["value"],
            "value1_l1": one["l1_name"],
            "value2_l1": two["l1_name"],
            "value1_l2": one["l2_name"],
            "value2_l2": two["l2_name"],
            "value1_l3": one["l3_name"],
            "value2_l3": two["l3_name"],
        }
    )


STAGE = Stage(STAGE_SPEC, run=run, preview=preview)
