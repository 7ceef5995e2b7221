"""A finished demo run exported in the release's shape, imported back, and analysed again: the same D,
bins, selections and outliers, and the same judge verdicts, with no call made."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from jobs.config import load_config
from jobs.driver import run_pipeline
from jobs.release.export import export_release
from jobs.release.importer import import_release
from tests.jobs.release.release_data import DEFAULT_COLUMNS, JUDGE_COLUMNS
from tests.release_run import DEMO, OVERRIDES, ResumedRun

pytestmark = pytest.mark.usefixtures("ray_local")

ANALYSIS = "pipeline=[embeddings,diversity,disagreement]"
SAME = {
    "disagreement": ["scenario_id", "subset"],
    "selections": ["subset", "rank"],
    "outliers": ["scenario_id", "model"],
    "outlier_counts": ["model"],
    "diversity": ["scenario_id"],
}
"""The tables the analysis rewrites from the imported tables, and the key each is compared by."""


def table(run_dir: Path, name: str) -> pl.DataFrame:
    return pl.read_parquet(run_dir / "tables" / f"{name}.parquet")


@pytest.fixture(scope="module")
def round_trip(release_run: ResumedRun, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("round_trip")
    original = tmp / "original"
    shutil.copytree(release_run.run_dir, original)
    exported = export_release(str(original), str(tmp / "hf"))
    again = tmp / "again"
    import_release(str(tmp / "hf"), str(again))
    # The same config and call store as the original run: its embeddings come from the store.
    conf = load_config(DEMO, [f"run_dir={again}", f"cache_dir={original / 'cache'}", *OVERRIDES, ANALYSIS])
    summaries = run_pipeline(conf)
    yield {
        "original": original,
        "again": again,
        "hf": tmp / "hf",
        "exported": exported,
        "summaries": summaries,
        "tmp": tmp,
    }


def test_the_export_has_the_released_columns(round_trip: dict[str, Any]) -> None:
    files = round_trip["exported"].files
    assert set(files["default"]) <= {
        "all_models",
        "claude_models",
        "openai_models",
        "gpt41_vs_mini",
        "o3_vs_o4mini",
        "opus4_vs_sonnet4",
    }
    for split, shards in files["default"].items():
        df = pl.read_parquet(round_trip["hf"] / shards[0])
        assert df.columns == DEFAULT_COLUMNS, split
        assert df["rank"].to_list() == list(range(df.height)), "rank is the selection order"
    for shards in files["judge_evaluations"].values():
        assert pl.read_parquet(round_trip["hf"] / shards[0]).columns == JUDGE_COLUMNS


def test_the_export_loads_with_datasets(round_trip: dict[str, Any], tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    rows = round_trip["exported"].rows
    for config in ("default", "complete", "judge_evaluations"):
        loaded = datasets.load_dataset(str(round_trip["hf"]), name=config, cache_dir=str(tmp_path / config))
        assert {split: len(ds) for split, ds in loaded.items()} == rows[config], config


def test_the_analysis_of_the_import_is_the_runs_own(round_trip: dict[str, Any]) -> None:
    assert round_trip["summaries"]["embeddings"]["calls"].get("made", 0) == 0, (
        "embeddings came from the store"
    )
    for name, key in SAME.items():
        before, after = (
            table(round_trip["original"], name).sort(key),
            table(round_trip["again"], name).sort(key),
        )
        assert before.height > 0 or name == "outliers", f"{name}: nothing to compare"
        assert after.equals(before), name
    shipped = table(round_trip["again"], "release_selections").select("subset", "rank", "scenario_id")
    assert shipped.sort("subset", "rank").equals(
        table(round_trip["original"], "selections")
        .select("subset", "rank", "scenario_id")
        .sort("subset", "rank")
    )


def test_judge_verdicts_come_back(round_trip: dict[str, Any]) -> None:
    key = ["scenario_id", "model", "sample"]
    for name in ("compliance_verdicts", "judge_stats"):
        sort = key if name == "compliance_verdicts" else ["judge_a", "judge_b", "metric"]
        before, after = (
            table(round_trip["original"], name).sort(sort),
            table(round_trip["again"], name).sort(sort),
        )
        # The release names no spec: its one version comes back without the run's label.
        assert after["spec"].is_null().all() and set(before["spec"]) == {"demo_spec"}
        assert after.drop("spec").equals(before.drop("spec")), name
    decided = ["scenario_id", "model", "judge", "decision"]
    before = table(round_trip["original"], "compliance").select(decided).sort(decided)
    assert table(round_trip["again"], "compliance").select(decided).sort(decided).equals(before)


def test_exporting_the_import_again_writes_the_same_files(round_trip: dict[str, Any]) -> None:
    second = export_release(str(round_trip["again"]), str(round_trip["tmp"] / "hf2"))
    assert second.files == round_trip["exported"].files
    for splits in second.files.values():
        for shards in splits.values():
            for shard in shards:
                first = pl.read_parquet(round_trip["hf"] / shard)
                assert pl.read_parquet(round_trip["tmp"] / "hf2" / shard).equals(first), shard
