"""The export's splits, shards, card and folder handling, on a run built from tables (no Ray)."""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest
import yaml

from actors.errors import SpecstressError
from jobs.analysis.disagreement import DISAGREEMENT_SCHEMA
from jobs.analysis.selection import SELECTION_SCHEMA
from jobs.engine.rundir import RunDir
from jobs.release.export import export_release
from jobs.release.importer import import_release
from jobs.stages.tables import read_table, write_table
from tests.jobs.release.release_data import DEFAULT_COLUMNS, build_release


@pytest.fixture(scope="module")
def base_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An imported dataset: scenarios, responses, scores, rubrics and judge verdicts, no analysis yet."""
    tmp = tmp_path_factory.mktemp("export")
    import_release(str(build_release(tmp / "dataset").root), str(tmp / "run"))
    return tmp / "run"


def analysed(base_run: Path, tmp_path: Path, subsets: tuple[str, ...]) -> Path:
    """A copy of the run with a disagreement table and selections for `subsets` (four picks each)."""
    run_dir = tmp_path / "run"
    shutil.copytree(base_run, run_dir)
    run = RunDir.open(str(run_dir))
    ids = read_table(run, "responses")["scenario_id"].unique().sort()
    dis = pl.concat(
        pl.DataFrame({"scenario_id": ids}).with_columns(
            subset=pl.lit(s),
            n_models=pl.lit(2, pl.Int32),
            d=pl.int_range(pl.len()) % 4 * 0.8,
        )
        for s in subsets
    ).with_columns(
        std_value1=pl.col("d"),
        std_value2=pl.col("d"),
        high=pl.col("d") >= 1.5,
        bin=pl.col("d")
        .cut(
            [1.0, 1.5, 2.0, 2.5],
            labels=["[0,1)", "[1,1.5)", "[1.5,2)", "[2,2.5)", "[2.5,3]"],
            left_closed=True,
        )
        .cast(pl.String),
    )
    write_table(run, "disagreement", dis, DISAGREEMENT_SCHEMA)
    sel = pl.concat(
        pl.DataFrame({"scenario_id": ids[i::3][:4]}).with_columns(
            subset=pl.lit(s),
            rank=pl.int_range(pl.len(), dtype=pl.Int64),
            d=pl.lit(2.0),
            weighted_distance=pl.lit(1.0),
        )
        for i, s in enumerate(subsets)
    )
    write_table(run, "selections", sel, SELECTION_SCHEMA)
    return run_dir


def test_subsets_the_release_lacks_keep_their_names_and_the_card_says_so(
    base_run: Path, tmp_path: Path
) -> None:
    run_dir = analysed(base_run, tmp_path, ("all", "openai", "my_pair"))
    result = export_release(str(run_dir), str(tmp_path / "hf"))
    assert list(result.rows["default"]) == ["all_models", "openai_models", "my_pair"]
    notes = " ".join(result.notes)
    assert (
        "release splits this run has no subset for: claude_models, gpt41_vs_mini, o3_vs_o4mini, opus4_vs_sonnet4"
        in notes
    )
    assert "splits the release lacks, named by this run's subsets: my_pair" in notes
    card = (tmp_path / "hf" / "README.md").read_text()
    header = yaml.safe_load(card.split("---")[1])
    configs = {c["config_name"]: [f["split"] for f in c["data_files"]] for c in header["configs"]}
    assert configs["default"] == ["all_models", "openai_models", "my_pair"]
    assert set(configs) == {"default", "complete", "judge_evaluations"}
    assert "| my_pair | my_pair |" in card and "claude_models" in card.split("## Notes")[1]
    picks = pl.read_parquet(tmp_path / "hf" / result.files["default"]["my_pair"][0])
    assert picks.columns == DEFAULT_COLUMNS and picks["rank"].to_list() == [0, 1, 2, 3]


def test_a_subset_that_cannot_name_a_split_is_refused_before_anything_is_written(
    base_run: Path, tmp_path: Path
) -> None:
    run_dir = analysed(base_run, tmp_path, ("all", "my-pair"))
    with pytest.raises(SpecstressError, match="subset 'my-pair': not a valid split name"):
        export_release(str(run_dir), str(tmp_path / "hf"))
    assert not (tmp_path / "hf").exists() and [p.name for p in tmp_path.iterdir()] == ["run"]


def test_shards_of_rows_per_file_rows_load_as_one_split(base_run: Path, tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    result = export_release(str(base_run), str(tmp_path / "hf"), rows_per_file=10)
    shards = result.files["complete"]["train"]
    assert shards == [f"complete/train-{i:05d}-of-00004.parquet" for i in range(4)]
    # A cache of its own: the library keys local folders loosely and may serve another test's rows.
    loaded = datasets.load_dataset(
        str(tmp_path / "hf"), name="complete", split="train", cache_dir=str(tmp_path / "c")
    )
    assert len(loaded) == 36 and loaded.column_names[-2:] == ["value1_spectrum", "value2_spectrum"]
    assert "no selections (the disagreement stage has not run): no default config" in result.notes
    # An imported run exports the dataset's own indexes (its chunk size is in the manifest).
    complete = pl.concat(pl.read_parquet(tmp_path / "hf" / f) for f in shards)
    built = pl.read_parquet(base_run.parent / "dataset" / "complete" / "train-00000-of-00001.parquet")
    key = ["query", "chunk_index", "entry_idx"]
    assert complete.select(key).sort(key).equals(built.select(key).sort(key))


def test_an_earlier_export_is_replaced_and_nothing_else_is(base_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "hf"
    export_release(str(base_run), str(out), rows_per_file=10)
    export_release(str(base_run), str(out))
    assert sorted(p.name for p in (out / "complete").iterdir()) == ["train-00000-of-00001.parquet"]
    (out / "mine.txt").write_text("keep")
    with pytest.raises(SpecstressError, match="is not an earlier export"):
        export_release(str(base_run), str(out))
    assert (out / "mine.txt").read_text() == "keep" and (out / "complete").is_dir()
