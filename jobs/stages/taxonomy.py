"""Load a four-level value taxonomy in the "Values in the Wild" CSV format.

The format (Huang et al. 2025) is two files:

- ``values_tree.csv``: ``cluster_id, description, name, level, parent_cluster_id`` (and
  ``pct_total_occurrences``, which is not needed here). Level 0 rows are the values,
  levels 1, 2 and 3 are ever coarser clusters; each row's parent is exactly one level up
  and level-3 rows have none.
- ``values_frequencies.csv``: ``value, pct_convos``, one row per level-0 value.

Both files are read with the `csv` module so every error can name the physical line
(the header is line 1); the checks themselves are polars expressions over the whole
table. The first problem found, in line order, is raised as a `TaxonomyError`.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from actors.errors import SpecstressError

TREE_COLUMNS: tuple[str, ...] = ("cluster_id", "description", "name", "level", "parent_cluster_id")
FREQUENCY_COLUMNS: tuple[str, ...] = ("value", "pct_convos")
LEAF_COLUMNS: tuple[str, ...] = ("value", "freq", "l1_id", "l1_name", "l2_id", "l2_name", "l3_id", "l3_name")
VALUE_LEVEL = 0
TOP_LEVEL = 3

_LINE = "_line"
_DEMO_DIR = Path(__file__).resolve().parents[1] / "data" / "demo_taxonomy"


class TaxonomyError(SpecstressError):
    """A taxonomy file is unreadable or malformed.

    Attributes:
        path: the offending file.
        line: 1-based physical line in that file (the header is line 1), or None when the
            problem concerns the whole file.
        problem: what is wrong, without the location.
    """

    def __init__(self, path: str | Path, line: int | None, problem: str) -> None:
        self.path = Path(path)
        self.line = line
        self.problem = problem
        where = f"{path}, line {line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}")


def demo_taxonomy_paths() -> tuple[Path, Path]:
    """Return ``(values_tree.csv, values_frequencies.csv)`` of the demo taxonomy shipped in the package."""
    return _DEMO_DIR / "values_tree.csv", _DEMO_DIR / "values_frequencies.csv"


def load_taxonomy(tree_path: str | Path, frequencies_path: str | Path) -> pl.DataFrame:
    """Load the leaf values of a taxonomy with their frequency and ancestors.

    Args:
        tree_path: ``values_tree.csv``.
        frequencies_path: ``values_frequencies.csv``.

    Returns:
        One row per level-0 value, in tree-file order, with columns ``value`` (name),
        ``freq`` (``pct_convos``, Float64), and ``l1_id``, ``l1_name``, ``l2_id``,
        ``l2_name``, ``l3_id``, ``l3_name`` for its ancestors.

    Raises:
        TaxonomyError: a file is unreadable or malformed, or the two files disagree on
            the set of values. The message names the file, the line and the problem.
    """
    tree = _read_tree(tree_path)
    freqs = _read_frequencies(frequencies_path)

    leaves = tree.filter(pl.col("level") == VALUE_LEVEL).select(
        pl.col("name").alias("value"), pl.col("parent").alias("l1_id"), _LINE
    )
    matched = leaves.join(freqs, on="value", how="left", maintain_order="left", suffix="_freq")
    _fail_first(
        matched,
        pl.col("freq").is_null(),
        tree_path,
        lambda r: f"value {r['value']!r} has no row in {Path(frequencies_path).name}",
    )
    _fail_first(
        freqs,
        ~pl.col("value").is_in(leaves["value"].implode()),
        frequencies_path,
        lambda r: f"value {r['value']!r} is not a level-0 value of {Path(tree_path).name}",
    )

    out = matched.select("value", "freq", "l1_id")
    for level in range(VALUE_LEVEL + 1, TOP_LEVEL + 1):
        ancestors = tree.filter(pl.col("level") == level).select(
            pl.col("id").alias(f"l{level}_id"),
            pl.col("name").alias(f"l{level}_name"),
            pl.col("parent").alias(f"l{level + 1}_id"),
        )
        out = out.join(ancestors, on=f"l{level}_id", how="left", maintain_order="left")
    return out.select(LEAF_COLUMNS)


def load_categories(tree_path: str | Path, *, level: int = 2) -> pl.DataFrame:
    """Load the clusters of one level (by default the level-2 categories) of a taxonomy.

    Later stages match free-text value phrases to these, so they need the description
    as well as the name. The whole tree is validated as in `load_taxonomy`.

    Args:
        tree_path: ``values_tree.csv``.
        level: 1 (clusters), 2 (categories) or 3 (top categories).

    Returns:
        Columns ``id``, ``name``, ``description`` (empty string when the file has none),
        in tree-file order.

    Raises:
        ValueError: ``level`` is not 1, 2 or 3.
        TaxonomyError: the tree file is unreadable or malformed.
    """
    if level not in (1, 2, 3):
        raise ValueError(f"level must be 1, 2 or 3, got {level!r}")
    tree = _read_tree(tree_path)
    return tree.filter(pl.col("level") == level).select("id", "name", "description")


def _read_csv(path: str | Path, required: Sequence[str]) -> pl.DataFrame:
    """Read the ``required`` columns of a CSV file as strings, plus its physical line numbers.

    Blank lines are skipped. A quoted field may span lines; its row gets the line it starts on.
    """
    rows: list[list[str]] = []
    lines: list[int] = []
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise TaxonomyError(
                    path, None, f"file is empty; expected a header with {', '.join(required)}"
                )
            header = [name.strip() for name in header]
            _check_header(path, header, required)
            wanted = [header.index(name) for name in required]
            start = reader.line_num + 1
            for row in reader:
                if row:
                    if len(row) != len(header):
                        raise TaxonomyError(
                            path, start, f"row has {len(row)} fields but the header has {len(header)}"
                        )
                    rows.append([row[i] for i in wanted])
                    lines.append(start)
                start = reader.line_num + 1
    except OSError as exc:
        raise TaxonomyError(path, None, f"cannot read file: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise TaxonomyError(path, None, f"not UTF-8 text: {exc.reason} at byte {exc.start}") from exc
    except csv.Error as exc:
        raise TaxonomyError(path, None, f"malformed CSV: {exc}") from exc
    columns: dict[str, Any] = {
        name: pl.Series(name, [row[i] for row in rows], dtype=pl.String) for i, name in enumerate(required)
    }
    columns[_LINE] = pl.Series(_LINE, lines, dtype=pl.Int64)
    return pl.DataFrame(columns)


def _check_header(path: str | Path, header: list[str], required: Sequence[str]) -> None:
    """Raise on duplicate or missing column names (both reported at line 1)."""
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise TaxonomyError(path, 1, f"column {name!r} occurs twice in the header")
        seen.add(name)
    missing = [name for name in required if name not in seen]
    if missing:
        raise TaxonomyError(
            path,
            1,
            f"missing column(s) {', '.join(map(repr, missing))}; the header has {', '.join(header)}",
        )


def _fail_first(
    frame: pl.DataFrame, bad: pl.Expr, path: str | Path, describe: Callable[[dict[str, Any]], str]
) -> None:
    """Raise a `TaxonomyError` for the first row (in line order) where ``bad`` holds."""
    hits = frame.filter(bad)
    if hits.height:
        row = hits.sort(_LINE).row(0, named=True)
        raise TaxonomyError(path, row[_LINE], describe(row))


def _first_line_of(column: str) -> pl.Expr:
    """The line where each row's ``column`` value first occurs, to point duplicates at the original."""
    return pl.col(_LINE).min().over(column).alias("_first_line")


def _read_tree(path: str | Path) -> pl.DataFrame:
    """Read and validate ``values_tree.csv``.

    Returns:
        Columns ``id``, ``name``, ``description``, ``level`` (Int64), ``parent`` (null for
        level 3) and the line number, in file order.
    """
    raw = _read_csv(path, TREE_COLUMNS)
    _fail_first(raw, pl.col("cluster_id").str.strip_chars() == "", path, lambda r: "empty cluster_id")
    _fail_first(raw, pl.col("name").str.strip_chars() == "", path, lambda r: "empty name")
    tree = raw.select(
        pl.col("cluster_id").alias("id"),
        "name",
        "description",
        pl.col("level").str.strip_chars().cast(pl.Int64, strict=False),
        pl.col("level").alias("_level_text"),
        pl.when(pl.col("parent_cluster_id").str.strip_chars() == "")
        .then(None)
        .otherwise(pl.col("parent_cluster_id"))
        .alias("parent"),
        _LINE,
    )
    _fail_first(
        tree, pl.col("level").is_null(), path, lambda r: f"level {r['_level_text']!r} is not an integer"
    )
    tree = tree.drop("_level_text")
    _fail_first(
        tree,
        ~pl.col("level").is_between(VALUE_LEVEL, TOP_LEVEL),
        path,
        lambda r: f"level {r['level']} is outside {VALUE_LEVEL}..{TOP_LEVEL} (0 = value, 3 = top category)",
    )
    _fail_first(
        tree.with_columns(_first_line_of("id")),
        pl.col("id").is_duplicated() & (pl.col(_LINE) != pl.col("_first_line")),
        path,
        lambda r: f"cluster_id {r['id']!r} occurs twice (first on line {r['_first_line']})",
    )
    leaves = tree.filter(pl.col("level") == VALUE_LEVEL)
    _fail_first(
        leaves.with_columns(_first_line_of("name")),
        pl.col("name").is_duplicated() & (pl.col(_LINE) != pl.col("_first_line")),
        path,
        lambda r: f"value {r['name']!r} occurs twice (first on line {r['_first_line']})",
    )
    _fail_first(
        tree,
        (pl.col("level") == TOP_LEVEL) & pl.col("parent").is_not_null(),
        path,
        lambda r: f"level-{TOP_LEVEL} row has parent {r['parent']!r}; top categories have no parent",
    )
    _fail_first(
        tree,
        (pl.col("level") < TOP_LEVEL) & pl.col("parent").is_null(),
        path,
        lambda r: f"level-{r['level']} row {r['id']!r} has no parent_cluster_id",
    )
    _fail_first(
        tree,
        pl.col("parent").is_not_null() & ~pl.col("parent").is_in(tree["id"].implode()),
        path,
        lambda r: f"unknown parent {r['parent']!r}",
    )
    _check_acyclic(tree, path)
    with_parent_level = tree.with_columns(
        pl.col("parent").replace_strict(tree["id"], tree["level"], default=None).alias("_parent_level")
    )
    _fail_first(
        with_parent_level,
        pl.col("_parent_level") != pl.col("level") + 1,
        path,
        lambda r: (
            f"parent {r['parent']!r} is level {r['_parent_level']}, but a level-{r['level']} row "
            f"needs a level-{r['level'] + 1} parent"
        ),
    )
    return tree


def _check_acyclic(tree: pl.DataFrame, path: str | Path) -> None:
    """Raise if following parents from some row never reaches a top category.

    Runs before the level check, which would also reject a cycle but with a less useful
    message. Pointer doubling keeps it vectorised: after k squarings ``jump[i]`` is the
    ancestor 2**k steps up, and a sentinel root (index n) points to itself.
    """
    n = tree.height
    parent = tree["parent"].replace_strict(tree["id"], pl.int_range(n, eager=True), default=None)
    parent_row = parent.fill_null(n).to_numpy().astype(np.int64)
    jump = np.append(parent_row, n)
    for _ in range(max(1, n.bit_length())):
        jump = jump[jump]
    stuck = np.flatnonzero(jump[:n] != n)
    if stuck.size == 0:
        return
    # Walk up from the first stuck row until a row repeats: the repeat starts the cycle.
    order: list[int] = []
    position: dict[int, int] = {}
    row = int(stuck[0])
    while row not in position:
        position[row] = len(order)
        order.append(row)
        row = int(parent_row[row])
    cycle = order[position[row] :]
    ids = tree["id"]
    lines = tree[_LINE]
    first = min(cycle, key=lambda i: lines[i])
    start = cycle.index(first)
    chain = [*cycle[start:], *cycle[:start], first]
    raise TaxonomyError(path, lines[first], "parent cycle: " + " -> ".join(repr(ids[i]) for i in chain))


def _read_frequencies(path: str | Path) -> pl.DataFrame:
    """Read and validate ``values_frequencies.csv``.

    Returns:
        Columns ``value``, ``freq`` (Float64, finite and >= 0) and the line number.
    """
    raw = _read_csv(path, FREQUENCY_COLUMNS)
    _fail_first(raw, pl.col("value").str.strip_chars() == "", path, lambda r: "empty value")
    freqs = raw.with_columns(
        pl.col("pct_convos").str.strip_chars().cast(pl.Float64, strict=False).alias("freq")
    )
    _fail_first(
        freqs,
        pl.col("freq").is_null() | ~pl.col("freq").is_finite() | (pl.col("freq") < 0),
        path,
        lambda r: f"pct_convos {r['pct_convos']!r} is not a finite number >= 0",
    )
    _fail_first(
        freqs.with_columns(_first_line_of("value")),
        pl.col("value").is_duplicated() & (pl.col(_LINE) != pl.col("_first_line")),
        path,
        lambda r: f"value {r['value']!r} occurs twice (first on line {r['_first_line']})",
    )
    return freqs.select("value", "freq", _LINE)
