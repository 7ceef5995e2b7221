"""pairs -> ... -> scores -> embeddings (api, emulator) -> diversity -> disagreement, then a rerun."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from actors.emulator.server import EmulatorServer
from actors.errors import ConfigError
from jobs.analysis.disagreement import DISAGREEMENT_SCHEMA
from jobs.analysis.diversity import DiverseSelection, check_selection
from jobs.analysis.outliers import OUTLIER_COUNTS_SCHEMA, OUTLIER_SCHEMA
from jobs.analysis.selection import DIVERSE_SCHEMA, SELECTION_SCHEMA
from jobs.conf.schema import RunConf
from jobs.context import stage_context
from jobs.driver import run_pipeline, skipped_stages
from jobs.engine.rundir import RunDir
from jobs.outputs.status import format_status, run_status
from jobs.stages.devices import require_gpu
from jobs.stages.disagreement import resolve_subsets, summary_lines
from jobs.stages.disagreement import run as disagreement
from jobs.stages.unusable import NothingValid
from tests.conftest import emulator_config
from tests.jobs.stages.test_model_sweep import make_conf, write_scenarios

pytestmark = pytest.mark.usefixtures("ray_local")

MODELS = "[claude_opus_4,claude_sonnet_4,gpt_4_1,gpt_4_1_mini,o3,o4_mini]"
PIPELINE = ["pairs", "scenarios", "responses", "rubrics", "scores", "embeddings", "diversity", "disagreement"]
EMBED_MODEL = (
    "models.text_embedding_3_small.provider=openai",
    "models.text_embedding_3_small.model_id=text-embedding-3-small",
    "models.text_embedding_3_small.base_url=${vars.openai_base_url}",
    "models.text_embedding_3_small.api_key_env=${vars.openai_key_env}",
    "models.text_embedding_3_small.account=openai",
    "models.text_embedding_3_small.prices.input=0.02",
)


def conf(url: str, run_dir: Path) -> RunConf:
    return make_conf(
        url,
        run_dir,
        *EMBED_MODEL,
        "seed=5",
        "stages.pairs.n_pairs=6",
        "stages.scenarios.generators={claude_opus_4: 1.0, o3: 1.0}",
        f"stages.responses.models={MODELS}",
        "stages.embeddings.backend=api",
        "stages.embeddings.model=text_embedding_3_small",
        "stages.embeddings.batch_size=4",
        "stages.diversity.delta=0.9",
        "stages.disagreement.high_threshold=1.0",
    )


@pytest.fixture(scope="module")
def analysed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The whole chain once, then the same config again on the same emulator."""
    run_dir = tmp_path_factory.mktemp("analysis") / "run"
    with EmulatorServer(emulator_config()) as emu:
        first = run_pipeline(conf(emu.url, run_dir), stages=PIPELINE)
        before = dict(emu.stats()["ok_by_hash"])
        second = run_pipeline(conf(emu.url, run_dir), stages=PIPELINE)
        after = dict(emu.stats()["ok_by_hash"])
    yield {"run": run_dir / "tables", "first": first, "second": second, "before": before, "after": after}


def table(info: dict[str, Any], name: str) -> pa.Table:
    return pq.read_table(info["run"] / f"{name}.parquet")


def test_tables_have_their_schemas(analysed: dict[str, Any]) -> None:
    for name, schema in [
        ("diversity", DIVERSE_SCHEMA),
        ("disagreement", DISAGREEMENT_SCHEMA),
        ("selections", SELECTION_SCHEMA),
        ("outliers", OUTLIER_SCHEMA),
        ("outlier_counts", OUTLIER_COUNTS_SCHEMA),
    ]:
        assert table(analysed, name).schema.equals(schema, check_metadata=False), name
    emb = table(analysed, "scenario_embeddings")
    meta = emb.schema.metadata
    assert meta[b"embedding_backend"] == b"api" and meta[b"embedding_model"] == b"text-embedding-3-small"
    assert meta[b"embedding_model_key"] == b"text_embedding_3_small"
    assert emb.schema.field("embedding").type == pa.list_(pa.float32(), 1536)
    x = emb.column("embedding").combine_chunks().flatten().to_numpy().reshape(-1, 1536)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    scenarios = table(analysed, "scenarios").column("scenario_id").to_pylist()
    assert sorted(emb.column("scenario_id").to_pylist()) == sorted(scenarios)
    emb_summary = analysed["first"]["embeddings"]
    assert (
        emb_summary["embedded"]
        == emb_summary["unique_texts"]
        == len(set(table(analysed, "scenarios")["query"].to_pylist()))
    )
    assert emb_summary["calls"]["requests"] == -(-emb_summary["unique_texts"] // 4)


def test_diversity_has_the_guarantees(analysed: dict[str, Any]) -> None:
    emb = pl.from_arrow(table(analysed, "scenario_embeddings"))
    div = pl.from_arrow(table(analysed, "diversity"))
    assert isinstance(emb, pl.DataFrame) and isinstance(div, pl.DataFrame)
    div = emb.select("scenario_id").join(div, on="scenario_id", how="left", maintain_order="left")
    x = np.stack(emb["embedding"].to_numpy())
    index = {s: i for i, s in enumerate(emb["scenario_id"])}
    sel = DiverseSelection(
        diverse=div["diverse"].to_numpy(),
        center=np.array([index[c] for c in div["center_id"]]),
        center_distance=div["center_distance"].to_numpy(),
        order=np.arange(len(x)),
        n_cells=1,
    )
    assert check_selection(x, sel, delta=0.9) == (True, True)
    assert (div["center_distance"] <= 0.9 + 1e-5).all()
    centers = set(div.filter("diverse")["scenario_id"])
    assert set(div["center_id"]) <= centers and 1 <= len(centers) < len(x)
    summary = analysed["first"]["diversity"]
    assert summary["coverage_ok"] and summary["separation_ok"] and summary["diverse"] == len(centers)


def test_selections_are_high_disagreement_scenarios_of_their_subset(analysed: dict[str, Any]) -> None:
    dis = pl.from_arrow(table(analysed, "disagreement"))
    sel = pl.from_arrow(table(analysed, "selections"))
    assert isinstance(dis, pl.DataFrame) and isinstance(sel, pl.DataFrame)
    summary = analysed["first"]["disagreement"]
    assert list(summary["subsets"]) == [
        "all",
        "claude",
        "openai",
        "opus4_vs_sonnet4",
        "gpt41_vs_mini",
        "o3_vs_o4mini",
    ]
    assert summary["subsets"]["all"]["models"] == 6 and summary["subsets"]["claude"]["models"] == 2
    joined = sel.join(dis, on=["scenario_id", "subset"], how="left", suffix="_dis")
    assert joined["high"].all() and (joined["d"] == joined["d_dis"]).all()
    for name, counts in summary["subsets"].items():
        mine = sel.filter(pl.col("subset") == name)
        assert counts["selected"] == mine.height <= counts["high"]
        assert mine["rank"].to_list() == list(range(mine.height))
        assert mine["scenario_id"].n_unique() == mine.height
        if counts["high"]:
            assert mine.height >= 1
    assert sum(c["selected"] for c in summary["subsets"].values()) > 0, (
        "the emulator should disagree somewhere"
    )
    counts = pl.from_arrow(table(analysed, "outlier_counts"))
    assert isinstance(counts, pl.DataFrame)
    assert dict(counts.select("model", "n_outliers").iter_rows()) == summary["outliers"]
    lines = summary_lines(summary)
    assert lines[1].startswith("all") and lines[-1].startswith("outliers:")


def test_rerun_makes_no_calls_and_embeds_nothing(analysed: dict[str, Any]) -> None:
    assert analysed["after"] == analysed["before"], "a rerun sent requests the store already answered"
    emb = analysed["second"]["embeddings"]
    assert emb["embedded"] == 0 and emb["cached"] == emb["unique_texts"] and emb["calls"] == {}
    assert analysed["second"]["disagreement"] == analysed["first"]["disagreement"]
    assert analysed["second"]["diversity"]["diverse"] == analysed["first"]["diversity"]["diverse"]


def test_subsets_default_to_the_scored_models_and_configured_ones_are_checked() -> None:
    got = resolve_subsets(None, {"o3", "o4_mini", "gpt_4o"})
    assert got == {
        "all": ["gpt_4o", "o3", "o4_mini"],
        "openai": ["gpt_4o", "o3", "o4_mini"],
        "o3_vs_o4mini": ["o3", "o4_mini"],
    }
    assert resolve_subsets({"pair": ["a", "b"]}, {"a", "b", "c"}) == {"pair": ["a", "b"]}
    with pytest.raises(ConfigError, match=r"subsets\.pair.*\['z'\]"):
        resolve_subsets({"pair": ["a", "z"]}, {"a", "b"})


def test_diverse_only_selects_among_diverse_scenarios(analysed: dict[str, Any], tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(analysed["run"].parent, run_dir)
    out = run_pipeline(
        make_conf("http://127.0.0.1:9", run_dir, "stages.disagreement.diverse_only=true"),
        stages=["disagreement"],
    )
    diverse = set(pl.read_parquet(run_dir / "tables" / "diversity.parquet").filter("diverse")["scenario_id"])
    dis = pl.read_parquet(run_dir / "tables" / "disagreement.parquet")
    sel = pl.read_parquet(run_dir / "tables" / "selections.parquet")
    assert set(dis["scenario_id"]) <= diverse and set(sel["scenario_id"]) <= diverse
    assert (
        out["disagreement"]["diverse_only"]
        and out["disagreement"]["scenarios"] == dis["scenario_id"].n_unique()
    )


def test_hashing_backend_runs_on_ray_data_and_resumes(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    n = write_scenarios(run_dir)
    overrides = (
        "stages.embeddings.backend=hashing",
        "stages.embeddings.num_actors=2",
        "stages.embeddings.batch_size=4",
    )
    first = run_pipeline(
        make_conf("http://127.0.0.1:9", run_dir, *overrides), stages=["embeddings", "diversity"]
    )
    again = run_pipeline(make_conf("http://127.0.0.1:9", run_dir, *overrides), stages=["embeddings"])
    assert (first["embeddings"]["embedded"], again["embeddings"]["embedded"]) == (n, 0)
    emb = pq.read_table(run_dir / "tables" / "scenario_embeddings.parquet")
    assert emb.schema.metadata[b"embedding_backend"] == b"hashing"
    assert emb.schema.field("embedding").type == pa.list_(pa.float32(), 384) and emb.num_rows == n
    assert first["diversity"]["coverage_ok"] and first["diversity"]["separation_ok"]


def test_api_backend_needs_an_embeddings_model(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    write_scenarios(run_dir)
    base = ("stages.embeddings.backend=api",)
    with pytest.raises(ConfigError, match="needs a model key"):
        run_pipeline(make_conf("http://127.0.0.1:9", run_dir, *base), stages=["embeddings"])
    with pytest.raises(ConfigError, match="no embeddings API"):
        run_pipeline(
            make_conf("http://127.0.0.1:9", run_dir, *base, "stages.embeddings.model=claude_opus_4"),
            stages=["embeddings"],
        )


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("stages.diversity.device=cuda", r"'stages.diversity.device': 'cuda' needs a GPU in the Ray cluster"),
        ("stages.diversity.device=tpu", r"'stages.diversity.device': must be 'cpu' or 'cuda', got 'tpu'"),
        ("stages.embeddings.device=cuda:0", r"'stages.embeddings.device': 'cuda:0' needs a GPU"),
    ],
)
def test_a_gpu_device_without_a_gpu_in_ray_is_refused_by_key(
    tmp_path: Path, override: str, match: str
) -> None:
    run_dir = tmp_path / "run"
    write_scenarios(run_dir)
    conf = make_conf("http://127.0.0.1:9", run_dir, "stages.embeddings.backend=hashing", override)
    stage = override.split(".")[1]
    if stage == "diversity":
        run_pipeline(
            make_conf("http://127.0.0.1:9", run_dir, "stages.embeddings.backend=hashing"),
            stages=["embeddings"],
        )
    with pytest.raises(ConfigError, match=match):
        run_pipeline(conf, stages=[stage])


def test_a_cluster_waits_for_its_autoscaler_to_start_a_gpu_node(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="jobs.stages.devices"):
        require_gpu("stages.diversity.device", "cuda", autoscaled=True)
    assert "no GPU in the cluster yet; waiting for the autoscaler" in caplog.text
    with pytest.raises(ConfigError, match="must be 'cpu' or 'cuda', got 'gpu'"):
        require_gpu("stages.diversity.device", "gpu", autoscaled=True)


def _spoil(tables: Path) -> int:
    """Every rubric invalid and every score `no_rubric`, as a model that never writes a valid
    rubric leaves them; returns the rubrics."""
    rubrics = pl.read_parquet(tables / "rubrics.parquet").with_columns(
        status=pl.lit("invalid"),
        error=pl.lit("no JSON object found in the answer"),
        value1_spectrum=None,
        value2_spectrum=None,
    )
    scores = pl.read_parquet(tables / "scores.parquet").with_columns(
        status=pl.lit("no_rubric"), error=pl.lit("the pair has no valid rubric"), position=None
    )
    for name, frame in (("rubrics", rubrics), ("scores", scores)):
        schema = pq.read_schema(tables / f"{name}.parquet")
        pq.write_table(frame.to_arrow().cast(schema), tables / f"{name}.parquet")
    return rubrics.height


def test_nothing_valid_upstream_skips_the_dependent_stages_with_the_reason(
    analysed: dict[str, Any], tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(analysed["run"].parent, run_dir)
    (run_dir / "tables" / "disagreement.parquet").unlink()
    n_rubrics = _spoil(run_dir / "tables")
    out = run_pipeline(
        make_conf("http://127.0.0.1:9", run_dir, "stages.topics.scope=all"),
        stages=["disagreement", "topics", "diversity"],
    )
    # The stage that does not read the skipped one's tables still runs.
    assert list(out) == ["diversity"]
    skipped = skipped_stages(str(run_dir))
    assert set(skipped) == {"disagreement", "topics"}
    why = skipped["disagreement"]
    assert "fewer than two models have a valid score" in why and "set stages.disagreement" not in why
    assert f"rubrics: {n_rubrics} of {n_rubrics} rows unusable (invalid {n_rubrics})" in why
    assert '"no JSON object found in the answer"' in why and "no_rubric" in why
    assert "it reads 'disagreement'" in skipped["topics"] and "stage 'disagreement'" in skipped["topics"]
    assert not (run_dir / "tables" / "disagreement.parquet").exists()
    status = run_status(str(run_dir))
    assert status["run_state"] == "partial"
    assert status["unusable"]["rubrics"][0]["by_status"] == {"invalid": n_rubrics}
    text = format_status(status)
    assert "stage disagreement   skipped" in text and f"skipped: {why}" in text


def test_a_configured_subset_whose_model_has_only_invalid_scores_is_an_upstream_skip(
    analysed: dict[str, Any], tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(analysed["run"].parent, run_dir)
    tables = run_dir / "tables"
    scores = pl.read_parquet(tables / "scores.parquet")
    spoilt = scores.with_columns(
        status=pl.when(pl.col("model") == "o3").then(pl.lit("invalid")).otherwise("status"),
        error=pl.when(pl.col("model") == "o3")
        .then(pl.lit("wrong shape: o3: Field required"))
        .otherwise("error"),
    )
    pq.write_table(
        spoilt.to_arrow().cast(pq.read_schema(tables / "scores.parquet")), tables / "scores.parquet"
    )
    conf = make_conf("http://127.0.0.1:9", run_dir, "stages.disagreement.subsets={pair: [o3, o4_mini]}")
    with pytest.raises(NothingValid, match=r"models \['o3'\] of stages.disagreement.subsets were scored"):
        disagreement(stage_context(conf, "disagreement", RunDir.open(str(run_dir))))
    # A model that was never scored is still the config's fault.
    conf = make_conf("http://127.0.0.1:9", run_dir, "stages.disagreement.subsets={pair: [o4_mini, grok_4]}")
    with pytest.raises(ConfigError, match=r"subsets\.pair.*\['grok_4'\]"):
        disagreement(stage_context(conf, "disagreement", RunDir.open(str(run_dir))))
