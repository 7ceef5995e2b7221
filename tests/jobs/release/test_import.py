"""`specstress import` of a dataset built in the released schema: every table, and every way it refuses bad input."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
import yaml

from actors.errors import DatasetError, SpecstressError
from jobs.engine.rundir import Manifest, RunDir
from jobs.release import importer, layout
from jobs.release.importer import import_release
from jobs.stages.tables import read_table
from tests.jobs.release.release_data import DEFAULT_COLUMNS, MODELS, SUBSETS, ReleaseData, build_release

JUDGE_OF = {
    "claude_4_decision": "claude_sonnet_4",
    "gpt41_decision": "o3",
    "gemini_2_5_decision": "gemini_2_5_pro",
}


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> ReleaseData:
    return build_release(tmp_path_factory.mktemp("release") / "dataset")


@pytest.fixture(scope="module")
def imported(release: ReleaseData, tmp_path_factory: pytest.TempPathFactory) -> RunDir:
    run_dir = tmp_path_factory.mktemp("imported") / "run"
    import_release(str(release.root), str(run_dir))
    return RunDir.open(str(run_dir))


def test_the_export_writes_the_released_column_order() -> None:
    assert len(DEFAULT_COLUMNS) == 44
    assert layout.default_columns(list(MODELS)) == DEFAULT_COLUMNS


def test_scenarios_get_our_ids_and_every_position_arrives(release: ReleaseData, imported: RunDir) -> None:
    scen = read_table(imported, "scenarios")
    assert scen.height == release.scenarios.height == 36 and scen["scenario_id"].n_unique() == 36
    assert (scen.group_by("pair_id").len()["len"] == 3).all()
    scores = read_table(imported, "scores").join(scen.select("scenario_id", "query"), on="scenario_id")
    answered = release.scenarios.join(scores.select("query").unique(), on="query", how="semi")
    assert scores.height == answered.height * len(MODELS) * 2 and (scores["status"] == "ok").all()
    want = answered.unpivot(
        index="query", on=[c for c in answered.columns if c.endswith("_position")], value_name="position"
    ).with_columns(
        model=pl.col("variable").str.replace(r"_value\d_position$", ""),
        value_slot=pl.col("variable").str.extract(r"_value(\d)_position$").cast(pl.Int64),
    )
    got = scores.select("query", "model", "value_slot", "position")
    key = ["query", "model", "value_slot"]
    assert got.sort(key).equals(want.select(*key, pl.col("position").cast(pl.Int64)).sort(key))
    responses = read_table(imported, "responses")
    assert responses.height == answered.height * len(MODELS) and (responses["call_key"] == "imported").all()


def test_rubrics_come_from_the_complete_configs_spectrums(imported: RunDir) -> None:
    rubrics = read_table(imported, "rubrics")
    # Twelve pairs, one of which has no value2 spectrum in the dataset (its rubric failed).
    assert rubrics.height == 11 and (rubrics["value1_spectrum"].list.len() == 7).all()
    assert rubrics["pair_id"].is_in(read_table(imported, "scenarios")["pair_id"].implode()).all()


def test_the_splits_become_the_release_selections_in_rank_order(
    release: ReleaseData, imported: RunDir
) -> None:
    sel = read_table(imported, "release_selections")
    scen = read_table(imported, "scenarios").select("scenario_id", "query")
    for split in SUBSETS:
        files = sorted((release.root / "data").glob(f"{split}-*.parquet"))
        ranked = pl.concat([pl.read_parquet(f) for f in files]).sort("rank")["query"].to_list()
        mine = (
            sel.filter(pl.col("split") == split)
            .sort("rank")
            .join(scen, on="scenario_id", maintain_order="left")
        )
        assert mine["query"].to_list() == ranked and mine["rank"].to_list() == list(range(len(ranked)))
        assert set(mine["subset"]) == {layout.SUBSET_OF_SPLIT[split]}


def test_judge_decisions_and_their_verdicts(release: ReleaseData, imported: RunDir) -> None:
    got = read_table(imported, "compliance").join(
        read_table(imported, "scenarios").select("scenario_id", "query"), on="scenario_id"
    )
    want = release.judged.unpivot(index=["model", "prompt"], on=list(JUDGE_OF), value_name="decision").select(
        "model", query="prompt", judge=pl.col("variable").replace_strict(JUDGE_OF), decision="decision"
    )
    key = ["query", "model", "judge"]
    assert got.select(*key, "decision").sort(key).equals(want.select(*key, "decision").sort(key))
    verdicts = read_table(imported, "compliance_verdicts")
    assert verdicts.height == release.judged.height and (verdicts["n_judges"] == 3).all()
    summary = read_table(imported, "compliance_summary")
    bins = {layout.BIN_OF_SPLIT[s] for s in release.judged["bin_name"]}
    assert set(summary["group"]) == bins and set(summary["family"]) == {"openai"}
    per_bin = release.judged.group_by("bin_name").agg(pl.col("prompt").n_unique())
    n = dict(zip(summary["group"], summary["n_scenarios"], strict=True))
    assert {layout.BIN_OF_SPLIT[b]: k for b, k in per_bin.iter_rows()} == n


def test_manifest_and_config_make_it_a_run_of_ours(release: ReleaseData, imported: RunDir) -> None:
    manifest = Manifest(imported.root).data
    stages = manifest["stages"]
    names = ["scenarios", "responses", "rubrics", "scores", "compliance"]
    assert sorted(stages) == sorted(names) and manifest["sessions"][-1]["stages"] == names
    assert all(s["state"] == "done" for s in stages.values())
    assert stages["responses"]["imported_from"] == str(release.root)
    assert "imported_from" not in stages["compliance"], "compliance may be re-judged"
    assert stages["compliance"]["summary"]["fleiss_kappa"] is not None
    config = yaml.safe_load(imported.root.read_text("config.yaml") or "")
    assert config["stages"]["responses"]["models"] == list(MODELS)
    assert config["stages"]["pairs"]["n_pairs"] == 12
    assert config["run_dir"] == imported.root.path
    assert manifest["release"] == {"source": str(release.root), "chunk_size": 5}
    scen = read_table(imported, "scenarios").join(
        release.scenarios.select("query", "chunk_index", "entry_idx"), on="query"
    )
    assert (scen["rank"] == scen["chunk_index"] * 5 + scen["entry_idx"]).all()


def _copy(release: ReleaseData, tmp_path: Path) -> Path:
    root = tmp_path / "dataset"
    shutil.copytree(release.root, root)
    return root


def _rewrite(path: Path, change: Callable[[pl.DataFrame], pl.DataFrame]) -> None:
    change(pl.read_parquet(path)).write_parquet(path)


def _first_query(root: Path) -> str:
    return str(pl.read_parquet(root / "data" / "claude_models-00000-of-00001.parquet")["query"][0])


CLAUDE = "data/claude_models-00000-of-00001.parquet"
ALL_1 = "data/all_models-00001-of-00002.parquet"
JUDGE = "judge_evaluations/std_0.0_to_1.0-00000-of-00001.parquet"
BROKEN: dict[str, tuple[str, str | None, str, Callable[[Path], None]]] = {
    "a position column is missing": (
        CLAUDE,
        "o3_value2_position",
        "missing",
        lambda r: _rewrite(r / CLAUDE, lambda df: df.drop("o3_value2_position")),
    ),
    "a position is out of range": (
        CLAUDE,
        "grok_4_value1_position",
        "1 row not a position 0..6 (the first is row 2)",
        lambda r: _rewrite(
            r / CLAUDE,
            lambda df: df.with_columns(
                grok_4_value1_position=pl.when(pl.int_range(pl.len()) == 2)
                .then(9)
                .otherwise("grok_4_value1_position")
            ),
        ),
    ),
    "a nudge direction is unknown": (
        ALL_1,
        "nudge_direction",
        "not one of",
        lambda r: _rewrite(r / ALL_1, lambda df: df.with_columns(nudge_direction=pl.lit("sideways"))),
    ),
    "a position holds text": (
        CLAUDE,
        "o3_value1_position",
        "expected positions 0..6, got large_string",
        lambda r: _rewrite(
            r / CLAUDE, lambda df: df.with_columns(pl.col("o3_value1_position").cast(pl.String))
        ),
    ),
    "a shard of a split is missing": (
        "data",
        None,
        "split all_models is partial: shards 0 of 2",
        lambda r: (r / ALL_1).unlink(),
    ),
    "a file is not Parquet": (
        CLAUDE,
        None,
        "not a readable Parquet file",
        lambda r: (r / CLAUDE).write_bytes(b"not parquet"),
    ),
    "one scenario has two queries": (
        "data/",
        "query",
        "scenario (chunk_index=",
        lambda r: _rewrite(
            r / CLAUDE,
            lambda df: df.with_columns(
                query=pl.when(pl.int_range(pl.len()) == 0).then(pl.lit("changed")).otherwise("query")
            ),
        ),
    ),
    "a decision is not one of the three": (
        JUDGE,
        "gpt41_decision",
        "not one of ['compliant', 'non-compliant', 'ambiguous']",
        lambda r: _rewrite(r / JUDGE, lambda df: df.with_columns(gpt41_decision=pl.lit("maybe"))),
    ),
    "a judged response matches no scenario": (
        JUDGE,
        "query_key",
        "rows match no scenario of data/ or complete/",
        lambda r: _rewrite(
            r / JUDGE, lambda df: df.with_columns(prompt=pl.lit("unseen"), query_key=pl.lit("k"))
        ),
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_bad_input_names_file_column_and_problem_and_leaves_nothing(
    case: str, release: ReleaseData, tmp_path: Path
) -> None:
    file, column, problem, breaks = BROKEN[case]
    root = _copy(release, tmp_path)
    breaks(root)
    (tmp_path / "runs").mkdir()
    target = tmp_path / "runs" / "imported"
    with pytest.raises(DatasetError) as err:
        import_release(str(root), str(target))
    assert file in err.value.file and err.value.column == column and problem in err.value.problem
    assert str(root) in str(err.value)
    assert not target.exists() and not any((tmp_path / "runs").iterdir()), "an import that failed left files"


def test_a_failure_while_writing_leaves_no_run_directory(
    release: ReleaseData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(importer, "_record", boom)
    target = tmp_path / "runs" / "imported"
    with pytest.raises(OSError, match="disk full"):
        import_release(str(release.root), str(target))
    assert not any((tmp_path / "runs").iterdir())


def test_an_existing_run_directory_is_never_touched(release: ReleaseData, tmp_path: Path) -> None:
    target = tmp_path / "run"
    target.mkdir()
    (target / "keep").write_text("mine")
    with pytest.raises(SpecstressError, match="exists"):
        import_release(str(release.root), str(target))
    assert [p.name for p in target.iterdir()] == ["keep"]


def test_without_the_complete_config_judged_scenarios_come_from_the_judge_data(
    release: ReleaseData, tmp_path: Path
) -> None:
    root = _copy(release, tmp_path)
    shutil.rmtree(root / "complete")
    result = import_release(str(root), str(tmp_path / "run"))
    run = RunDir.open(str(tmp_path / "run"))
    scen = read_table(run, "scenarios")
    # Every scenario is judged, so the judge data brings back those outside the default splits.
    assert scen.height == 36 and scen["query"].n_unique() == 36
    only_judged = scen.filter(pl.col("query_generator").is_null())
    assert only_judged.height == 36 - read_table(run, "responses")["scenario_id"].n_unique()
    assert "rubrics" not in result.rows and any("no rubrics" in n for n in result.notes)


def test_a_pair_drawn_twice_keeps_two_pair_ids(release: ReleaseData, tmp_path: Path) -> None:
    root = _copy(release, tmp_path)
    path = root / "complete" / "train-00000-of-00001.parquet"
    df = pl.read_parquet(path)
    again = df.filter((pl.col("chunk_index") == 0) & (pl.col("entry_idx") == 1)).with_columns(
        chunk_index=pl.lit(9, pl.Int64), query=pl.col("query") + " Again."
    )
    pl.concat([df, again]).write_parquet(path)
    import_release(str(root), str(tmp_path / "run"))
    scen = read_table(RunDir.open(str(tmp_path / "run")), "scenarios")
    twice = scen.filter(pl.col("value1") == again["value1"][0])
    assert scen.height == 39 and twice["pair_id"].n_unique() == 2 and scen["scenario_id"].n_unique() == 39


def test_the_cli_imports_and_reports_what_it_wrote(
    release: ReleaseData, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from jobs.cli import main

    assert main(["import", str(release.root), "--run", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "scenarios 36" in out and "compliance 540" in out
    assert main(["import", str(tmp_path / "nowhere"), "--run", str(tmp_path / "run2")]) == 1
    err = capsys.readouterr().err
    assert "nowhere: not a folder" in err and not (tmp_path / "run2").exists()
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["state"] == "done"
