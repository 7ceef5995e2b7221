"""Finding and checking the released dataset's files before anything is imported from them.

`find_shards` lists each config's shards and refuses a split with shards missing;
`check_shard` checks one shard's columns (present, typed) and values (no missing keys,
nudge directions, positions 0..6, spectrums of seven, known decisions). Every problem is a
`DatasetError` naming the file, the column and what is wrong, raised before the import
writes anything.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from actors.errors import DatasetError
from jobs.analysis.agreement import DECISIONS
from jobs.release import layout
from jobs.stages.rubrics import POSITIONS
from jobs.stages.scenarios import NUDGES

KEY = ("chunk_index", "entry_idx", "nudge_direction")
"""What names a scenario in the default and complete configs."""
REQUIRED: dict[str, tuple[str, ...]] = {
    "default": (*layout.DEFAULT_HEAD, *layout.INDEX_COLUMNS),
    "complete": (*layout.SCENARIO_COLUMNS, *layout.INDEX_COLUMNS),
    "judge_evaluations": ("model", "chunk_idx", "entry_idx", "query_key", "value1", "value2", "prompt"),
}
NOT_NULL = {"rank", "chunk_index", "chunk_idx", "entry_idx", "value1", "value2", "nudge_direction", "query"}
NOT_NULL |= {"model", "prompt"}
INTEGER = {"rank", "chunk_index", "chunk_idx", "entry_idx"}
INDEXES = INTEGER - {"rank"}


@dataclass(frozen=True)
class Shard:
    """One Parquet file of the dataset and the config and split it belongs to."""

    config: str
    split: str
    path: Path
    columns: tuple[str, ...]

    @property
    def models(self) -> list[str]:
        """The answering models: one per `response_<model>` column."""
        return sorted(c.removeprefix("response_") for c in self.columns if c.startswith("response_"))

    @property
    def decision_columns(self) -> list[str]:
        return [c for c in self.columns if c.endswith(layout.DECISION_SUFFIX)]

    def scan(self) -> pl.LazyFrame:
        return pl.scan_parquet(self.path)


def decision(column: str) -> pl.Expr:
    """A decision as our three words: case, spaces and underscores aside ("Non_compliant" -> non-compliant)."""
    word = pl.col(column).str.strip_chars().str.to_lowercase().str.replace_all(r"[\s_]+", "-")
    return word.replace({"noncompliant": "non-compliant"})


def find_shards(root: Path) -> dict[str, list[Shard]]:
    """Each config's shards under `root`; a config's folder may be absent, a split's shards may not."""
    if not root.is_dir():
        raise DatasetError(str(root), None, "not a folder (download the dataset's Parquet files first)")
    out: dict[str, list[Shard]] = {}
    for config, folder in layout.CONFIG_DIRS.items():
        paths = sorted((root / folder).glob("*.parquet"))
        if not paths:
            continue
        seen: dict[str, dict[int, int]] = defaultdict(dict)
        shards = []
        for path in paths:
            parsed = layout.parse_shard(path)
            if parsed is None:
                raise DatasetError(str(path), None, "not named like a shard, <split>-00000-of-00001.parquet")
            split, i, n = parsed
            seen[split][i] = n
            shards.append(Shard(config, split, path, tuple(_schema(path).names)))
        for split, got in seen.items():
            n = max(got.values())
            if set(got) != set(range(n)) or set(got.values()) != {n}:
                have = ", ".join(str(i) for i in sorted(got))
                raise DatasetError(
                    str(root / folder), None, f"split {split} is partial: shards {have} of {n}"
                )
        out[config] = shards
    if not ({"default", "complete"} & set(out)):
        raise DatasetError(str(root), None, "neither data/ nor complete/ holds Parquet shards")
    return out


def _schema(path: Path) -> pa.Schema:
    try:
        return pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DatasetError(str(path), None, f"not a readable Parquet file ({exc})") from None


def _type_problem(column: str, typ: pa.DataType) -> str | None:
    """Why a column's type cannot hold what the release puts there (None: it can)."""
    if pa.types.is_null(typ):
        return None
    if column in INTEGER:
        return None if pa.types.is_integer(typ) else f"expected integers, got {typ}"
    if column.endswith("_position"):
        ok = pa.types.is_integer(typ) or pa.types.is_floating(typ)
        return None if ok else f"expected positions 0..6, got {typ}"
    if column in layout.SPECTRUM_COLUMNS:
        ok = (pa.types.is_list(typ) or pa.types.is_large_list(typ)) and _is_text(typ.value_type)
        return None if ok else f"expected a list of strings, got {typ}"
    if column == "max_pop_std_openai":
        return (
            None if pa.types.is_integer(typ) or pa.types.is_floating(typ) else f"expected numbers, got {typ}"
        )
    return None if _is_text(typ) else f"expected text, got {typ}"


def _is_text(typ: pa.DataType) -> bool:
    return pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_string_view(typ)


def _value_checks(shard: Shard) -> list[tuple[str, str, pl.Expr]]:
    """(column, problem, mask of offending rows) for every value check of `shard`."""
    checks = [(c, "missing values", pl.col(c).is_null()) for c in shard.columns if c in NOT_NULL]
    checks += [(c, "negative", pl.col(c) < 0) for c in shard.columns if c in INDEXES]
    if "nudge_direction" in shard.columns:
        checks.append(
            ("nudge_direction", f"not one of {list(NUDGES)}", ~pl.col("nudge_direction").is_in(NUDGES))
        )
    top = len(POSITIONS) - 1
    for c in shard.columns:
        if c.endswith("_position"):
            bad = ~pl.col(c).is_between(0, top) | (pl.col(c).cast(pl.Float64).round() != pl.col(c))
            checks.append((c, f"not a position 0..{top}", bad))
        elif c in layout.SPECTRUM_COLUMNS:
            bad = (pl.col(c).list.len() != len(POSITIONS)) | (
                pl.col(c).list.drop_nulls().list.len() != len(POSITIONS)
            )
            checks.append((c, f"not {len(POSITIONS)} descriptions (positions 0..{top})", bad))
    for c in shard.decision_columns:
        checks.append((c, f"not one of {list(DECISIONS)}", ~decision(c).is_in(DECISIONS)))
    return checks


def check_shard(shard: Shard) -> None:
    """Check one shard's columns and values; raises `DatasetError` on the first problem."""
    cols = set(shard.columns)
    for c in REQUIRED[shard.config]:
        if c not in cols:
            raise DatasetError(str(shard.path), c, "missing")
    for m in shard.models:
        for slot in (1, 2):
            if layout.position_column(m, slot) not in cols:
                raise DatasetError(
                    str(shard.path), layout.position_column(m, slot), f"missing (response_{m} has it)"
                )
    stray = [
        c for c in shard.columns if c.endswith("_position") and c.rsplit("_value", 1)[0] not in shard.models
    ]
    if stray:
        raise DatasetError(str(shard.path), stray[0], "a position without its model's response column")
    if shard.config == "default" and not shard.models:
        raise DatasetError(str(shard.path), None, "no response_<model> columns")
    if shard.config == "judge_evaluations":
        if shard.split not in layout.BIN_OF_SPLIT:
            raise DatasetError(
                str(shard.path),
                None,
                f"unknown split {shard.split}; expected one of {list(layout.BIN_OF_SPLIT)}",
            )
        if not shard.decision_columns:
            raise DatasetError(str(shard.path), None, "no <judge>_decision columns")
    if shard.config == "complete" and len(cols & set(layout.SPECTRUM_COLUMNS)) == 1:
        other = next(c for c in layout.SPECTRUM_COLUMNS if c not in cols)
        raise DatasetError(str(shard.path), other, "missing (the other spectrum column is there)")
    schema = _schema(shard.path)
    for f in schema:
        problem = _type_problem(f.name, f.type)
        if problem and (f.name in REQUIRED[shard.config] or f.name in _checked(shard)):
            raise DatasetError(str(shard.path), f.name, problem)
    checks = _value_checks(shard)
    if not checks:
        return
    row = pl.int_range(pl.len())
    found = (
        shard.scan()
        .select(
            pl.struct(n=mask.sum(), first=row.filter(mask).first()).alias(str(i))
            for i, (_, _, mask) in enumerate(checks)
        )
        .collect()
    )
    for i, (column, problem, _) in enumerate(checks):
        hit = found[str(i)][0]
        if hit["n"]:
            rows = f"{hit['n']} row{'s' if hit['n'] > 1 else ''}"
            raise DatasetError(str(shard.path), column, f"{rows} {problem} (the first is row {hit['first']})")


def _checked(shard: Shard) -> set[str]:
    """The optional columns the import reads, whose types therefore matter."""
    return {
        *(layout.response_column(m) for m in shard.models),
        *(c for c in shard.columns if c.endswith("_position")),
        *layout.SPECTRUM_COLUMNS,
        *shard.decision_columns,
    }
