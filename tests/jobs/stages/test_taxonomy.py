"""Tests for jobs.stages.taxonomy: the real and demo taxonomies load, and malformed files fail clearly."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from actors.errors import SpecstressError
from jobs.stages.taxonomy import (
    TaxonomyError,
    demo_taxonomy_paths,
    load_categories,
    load_taxonomy,
)
from tests.shared_data import shared_file

LEAF_COLUMNS = ["value", "freq", "l1_id", "l1_name", "l2_id", "l2_name", "l3_id", "l3_name"]


@pytest.fixture
def real_dir() -> Path:
    """The real Values-in-the-Wild copy in ../shared (skips on a plain clone)."""
    return shared_file("data", "values-in-the-wild", "values_tree.csv").parent


def test_real_taxonomy_has_the_published_shape(real_dir: Path) -> None:
    values = load_taxonomy(real_dir / "values_tree.csv", real_dir / "values_frequencies.csv")
    assert values.columns == LEAF_COLUMNS
    assert values.height == 3307
    assert values["value"].n_unique() == 3307
    assert [values[f"l{level}_id"].n_unique() for level in (1, 2, 3)] == [266, 26, 5]
    assert values.null_count().sum_horizontal().item() == 0
    assert values.filter(pl.col("value") == "helpfulness")["freq"].item() == pytest.approx(23.359)
    assert set(values["l3_name"]) >= {"Practical values", "Personal values"}


def test_real_categories_have_descriptions(real_dir: Path) -> None:
    categories = load_categories(str(real_dir / "values_tree.csv"))
    assert categories.columns == ["id", "name", "description"]
    assert categories.height == 26
    assert categories["id"].str.starts_with("ai_values:l2:").all()
    assert (categories["description"].str.len_chars() > 20).all()
    assert load_categories(real_dir / "values_tree.csv", level=3).height == 5


def test_demo_taxonomy_ships_inside_the_package() -> None:
    tree, freqs = demo_taxonomy_paths()
    package_dir = Path(__file__).resolve().parents[3] / "jobs"
    assert tree.is_file() and freqs.is_file()
    assert package_dir in tree.parents and package_dir in freqs.parents


def test_demo_taxonomy_has_four_levels_of_plausible_size() -> None:
    values = load_taxonomy(*demo_taxonomy_paths())
    assert values.columns == LEAF_COLUMNS
    assert 120 <= values.height <= 180
    assert values["value"].n_unique() == values.height
    assert 35 <= values["l1_id"].n_unique() <= 45
    assert 12 <= values["l2_id"].n_unique() <= 16
    assert values["l3_id"].n_unique() == 5
    for level in (1, 2, 3):
        assert values[f"l{level}_id"].str.starts_with(f"demo:l{level}:").all()
    assert values.null_count().sum_horizontal().item() == 0
    assert (values["freq"] > 0).all()
    assert values["freq"].max() > 10 > values["freq"].median()


def test_demo_categories_match_the_values() -> None:
    tree, freqs = demo_taxonomy_paths()
    values = load_taxonomy(tree, freqs)
    categories = load_categories(tree)
    assert set(categories["id"]) == set(values["l2_id"])
    assert set(categories["name"]) == set(values["l2_name"])
    assert (categories["description"].str.len_chars() > 0).all()
    assert load_categories(tree, level=1).height == values["l1_id"].n_unique()


def test_load_categories_rejects_level_zero() -> None:
    with pytest.raises(ValueError, match="level must be 1, 2 or 3"):
        load_categories(demo_taxonomy_paths()[0], level=0)


# A small valid taxonomy. Row i of TREE is on line i + 2 of the file (line 1 is the header).
TREE_HEADER = ["cluster_id", "description", "name", "level", "parent_cluster_id", "pct_total_occurrences"]
TREE = [
    ["kindness", "", "kindness", "0", "c:l1:care", "30"],  # line 2
    ["honesty", "", "honesty", "0", "c:l1:truth", "50"],  # line 3
    ["candor", "", "candor", "0", "c:l1:truth", "20"],  # line 4
    ["c:l1:care", "Caring for others.", "Care", "1", "c:l2:social", "30"],  # line 5
    ["c:l1:truth", "Saying what is true.", "Truth", "1", "c:l2:epistemic", "70"],  # line 6
    ["c:l2:social", "Living together.", "Social", "2", "c:l3:all", "30"],  # line 7
    ["c:l2:epistemic", "Knowing things.", "Epistemic", "2", "c:l3:all", "70"],  # line 8
    ["c:l3:all", "Everything.", "All", "3", "", "100"],  # line 9
]
FREQ_HEADER = ["value", "pct_convos"]
FREQS = [["kindness", "1.5"], ["honesty", "2.0"], ["candor", "0.5"]]  # lines 2-4

Table = tuple[list[str], list[list[str]]]
Mutation = Callable[[Table, Table], object]


def _write(path: Path, table: Table) -> Path:
    header, rows = table
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _fresh() -> tuple[Table, Table]:
    return (list(TREE_HEADER), [list(r) for r in TREE]), (list(FREQ_HEADER), [list(r) for r in FREQS])


def _set(table: Table, row: int, column: str, value: str) -> None:
    table[1][row][table[0].index(column)] = value


def _drop_column(table: Table, column: str) -> None:
    index = table[0].index(column)
    for row in [table[0], *table[1]]:
        del row[index]


def test_small_fixture_is_valid(tmp_path: Path) -> None:
    tree, freqs = _fresh()
    values = load_taxonomy(_write(tmp_path / "tree.csv", tree), str(_write(tmp_path / "freqs.csv", freqs)))
    assert values.rows() == [
        ("kindness", 1.5, "c:l1:care", "Care", "c:l2:social", "Social", "c:l3:all", "All"),
        ("honesty", 2.0, "c:l1:truth", "Truth", "c:l2:epistemic", "Epistemic", "c:l3:all", "All"),
        ("candor", 0.5, "c:l1:truth", "Truth", "c:l2:epistemic", "Epistemic", "c:l3:all", "All"),
    ]


MALFORMED: list[tuple[str, Mutation, str, int, str]] = [
    # (id, mutation of (tree, freqs), file at fault, line, expected problem text)
    ("tree-missing-column", lambda t, f: _drop_column(t, "level"), "tree", 1, "missing column(s) 'level'"),
    (
        "freqs-missing-column",
        lambda t, f: _drop_column(f, "pct_convos"),
        "freqs",
        1,
        "missing column(s) 'pct_convos'",
    ),
    (
        "unknown-parent",
        lambda t, f: _set(t, 0, "parent_cluster_id", "c:l1:nope"),
        "tree",
        2,
        "unknown parent 'c:l1:nope'",
    ),
    (
        "two-row-cycle",
        lambda t, f: _set(t, 6, "parent_cluster_id", "c:l1:truth"),
        "tree",
        6,
        "parent cycle: 'c:l1:truth' -> 'c:l2:epistemic' -> 'c:l1:truth'",
    ),
    (
        "self-parent",
        lambda t, f: _set(t, 3, "parent_cluster_id", "c:l1:care"),
        "tree",
        5,
        "parent cycle: 'c:l1:care' -> 'c:l1:care'",
    ),
    (
        "duplicate-cluster-id",
        lambda t, f: t[1].append(["c:l1:care", "Again.", "Care again", "1", "c:l2:social", "0"]),
        "tree",
        10,
        "cluster_id 'c:l1:care' occurs twice (first on line 5)",
    ),
    (
        "duplicate-value-name",
        lambda t, f: t[1].append(["kindness-2", "", "kindness", "0", "c:l1:care", "0"]),
        "tree",
        10,
        "value 'kindness' occurs twice (first on line 2)",
    ),
    (
        "duplicate-frequency-row",
        lambda t, f: f[1].append(["honesty", "0.1"]),
        "freqs",
        5,
        "value 'honesty' occurs twice (first on line 3)",
    ),
    (
        "parent-two-levels-up",
        lambda t, f: _set(t, 0, "parent_cluster_id", "c:l2:social"),
        "tree",
        2,
        "parent 'c:l2:social' is level 2, but a level-0 row needs a level-1 parent",
    ),
    (
        "parent-same-level",
        lambda t, f: _set(t, 3, "parent_cluster_id", "c:l1:truth"),
        "tree",
        5,
        "parent 'c:l1:truth' is level 1, but a level-1 row needs a level-2 parent",
    ),
    (
        "top-level-with-parent",
        lambda t, f: _set(t, 7, "parent_cluster_id", "c:l2:social"),
        "tree",
        9,
        "level-3 row has parent 'c:l2:social'",
    ),
    (
        "missing-parent",
        lambda t, f: _set(t, 4, "parent_cluster_id", ""),
        "tree",
        6,
        "level-1 row 'c:l1:truth' has no parent_cluster_id",
    ),
    ("level-out-of-range", lambda t, f: _set(t, 7, "level", "4"), "tree", 9, "level 4 is outside 0..3"),
    (
        "level-not-integer",
        lambda t, f: _set(t, 1, "level", "one"),
        "tree",
        3,
        "level 'one' is not an integer",
    ),
    ("empty-cluster-id", lambda t, f: _set(t, 2, "cluster_id", " "), "tree", 4, "empty cluster_id"),
    (
        "frequency-not-numeric",
        lambda t, f: _set(f, 1, "pct_convos", "lots"),
        "freqs",
        3,
        "pct_convos 'lots' is not a finite number >= 0",
    ),
    (
        "frequency-negative",
        lambda t, f: _set(f, 2, "pct_convos", "-0.5"),
        "freqs",
        4,
        "pct_convos '-0.5' is not a finite number",
    ),
    ("frequency-nan", lambda t, f: _set(f, 0, "pct_convos", "nan"), "freqs", 2, "is not a finite number"),
    (
        "value-without-frequency",
        lambda t, f: f[1].pop(2),
        "tree",
        4,
        "value 'candor' has no row in freqs.csv",
    ),
    (
        "frequency-without-value",
        lambda t, f: f[1].append(["patience", "0.3"]),
        "freqs",
        5,
        "value 'patience' is not a level-0 value of tree.csv",
    ),
    (
        "ragged-row",
        lambda t, f: t[1][1].append("extra"),
        "tree",
        3,
        "row has 7 fields but the header has 6",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "at_fault", "line", "problem"),
    [case[1:] for case in MALFORMED],
    ids=[case[0] for case in MALFORMED],
)
def test_malformed_taxonomy_names_file_line_and_problem(
    tmp_path: Path, mutate: Mutation, at_fault: str, line: int, problem: str
) -> None:
    tree, freqs = _fresh()
    mutate(tree, freqs)
    paths = {"tree": _write(tmp_path / "tree.csv", tree), "freqs": _write(tmp_path / "freqs.csv", freqs)}
    with pytest.raises(TaxonomyError) as caught:
        load_taxonomy(paths["tree"], paths["freqs"])
    error = caught.value
    assert isinstance(error, SpecstressError)
    assert (error.path, error.line) == (paths[at_fault], line)
    assert problem in error.problem
    assert str(error) == f"{paths[at_fault]}, line {line}: {error.problem}"


def test_line_numbers_count_multiline_fields_and_blank_lines(tmp_path: Path) -> None:
    rows = [list(r) for r in TREE]
    rows[3][1] = "Caring\nfor others."  # row 3 now spans lines 5-6
    rows[5][4] = "c:l3:missing"  # pushed from line 7 to 8, and a blank line below pushes it to 9
    tree_path = tmp_path / "tree.csv"
    _write(tree_path, (TREE_HEADER, rows[:4]))
    with open(tree_path, "a", newline="", encoding="utf-8") as handle:
        handle.write("\n")
        csv.writer(handle, lineterminator="\n").writerows(rows[4:])
    freqs_path = _write(tmp_path / "freqs.csv", (FREQ_HEADER, FREQS))
    with pytest.raises(TaxonomyError, match="unknown parent 'c:l3:missing'") as caught:
        load_taxonomy(tree_path, freqs_path)
    assert caught.value.line == 9


def test_categories_validate_the_tree(tmp_path: Path) -> None:
    tree, _ = _fresh()
    _set(tree, 5, "level", "1")
    with pytest.raises(TaxonomyError, match="line 5: parent 'c:l2:social' is level 1") as caught:
        load_categories(_write(tmp_path / "tree.csv", tree))
    assert caught.value.line == 5


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda p: p, "cannot read file"),  # does not exist
        (lambda p: (p.mkdir(), p)[1], "cannot read file"),
        (lambda p: (p.write_bytes(b""), p)[1], "file is empty"),
        (lambda p: (p.write_bytes(b"value,pct_convos\ncaf\xe9,1\n"), p)[1], "not UTF-8 text"),
    ],
    ids=["missing", "directory", "empty", "not-utf8"],
)
def test_unreadable_frequency_file(tmp_path: Path, make: Callable[[Path], Path], problem: str) -> None:
    tree_path = _write(tmp_path / "tree.csv", (TREE_HEADER, TREE))
    bad = make(tmp_path / "freqs.csv")
    with pytest.raises(TaxonomyError) as caught:
        load_taxonomy(str(tree_path), str(bad))
    assert caught.value.path == bad
    assert caught.value.line is None
    assert problem in str(caught.value) and str(bad) in str(caught.value)


def test_byte_order_mark_and_padded_numbers_are_accepted(tmp_path: Path) -> None:
    tree_path = _write(tmp_path / "tree.csv", (TREE_HEADER, TREE))
    freqs_path = tmp_path / "freqs.csv"
    freqs_path.write_text("\ufeffvalue,pct_convos\nkindness, 1.5\nhonesty,2\ncandor,0.5\n", encoding="utf-8")
    values = load_taxonomy(tree_path, freqs_path)
    assert values["freq"].to_list() == [1.5, 2.0, 0.5]
