"""topics -> refusals -> compliance -> values on a small emulated run, then a rerun that pays nothing."""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from actors.emulator.config import OutputQuirks
from actors.emulator.server import EmulatorServer
from actors.errors import ConfigError
from jobs.analysis.agreement import majority
from jobs.conf.schema import RunConf
from jobs.driver import run_pipeline
from jobs.estimate.estimate import estimate
from jobs.outputs.status import run_status
from jobs.spec.sections import read_spec
from jobs.stages.judging import summary_lines
from jobs.stages.refusals import CATEGORIES
from jobs.stages.settings.topics import DEFAULT_TOPICS
from jobs.stages.taxonomy import demo_taxonomy_paths, load_categories
from tests.conftest import emulator_config
from tests.jobs.stages.test_model_sweep import make_conf
from tests.shared_data import SHARED, shared_file

# Two whole judge chains on the emulator (about 150 s): in the slow suite, to keep the default one
# under 15 minutes; the judge-table contract is also checked by the report tests.
pytestmark = [pytest.mark.usefixtures("ray_local"), pytest.mark.slow]

SPEC = SHARED / "data" / "openai-model-spec" / "model_spec_2025-04-11.md"
MODELS = "[claude_opus_4,claude_sonnet_4,gpt_4_1,gpt_4_1_mini,o3,o4_mini]"
PIPELINE = ["pairs", "scenarios", "responses", "rubrics", "scores", "embeddings", "disagreement"]
JUDGING = ["topics", "refusals", "compliance", "values"]
CONTRACT = {
    "topics": ["scenario_id", "model", "status", "error", "topics"],
    "refusals": [
        "scenario_id",
        "model",
        "sample",
        "judge",
        "category",
        "category_index",
        "refusal",
        "hard_refusal",
        "status",
        "error",
    ],
    "refusal_rates": [
        "model",
        "topic",
        "n",
        "refusal_rate",
        "refusal_ci_low",
        "refusal_ci_high",
        "hard_rate",
        "hard_ci_low",
        "hard_ci_high",
    ],
    "compliance": [
        "scenario_id",
        "model",
        "sample",
        "judge",
        "decision",
        "reasoning",
        "status",
        "error",
        "spec",
    ],
    "compliance_verdicts": [
        "scenario_id",
        "model",
        "sample",
        "n_judges",
        "n_problematic",
        "majority",
        "spec",
    ],
    "judge_stats": ["judge_a", "judge_b", "metric", "value", "spec"],
    "compliance_summary": [
        "group_kind",
        "group",
        "family",
        "subset",
        "n_scenarios",
        "all_pass",
        "any_fail",
        "all_fail",
        "frequent_noncompliance",
        "se",
        "n_any_judge",
        "all_fail_any_judge",
        "frequent_noncompliance_any_judge",
        "se_any_judge",
        "spec",
    ],
    "value_expressions": ["scenario_id", "model", "phrase", "category", "distance"],
    "value_counts": ["model", "category", "count"],
    "value_cooccurrence_pairs": ["model_a", "model_b", "category_a", "category_b", "n", "p"],
    "value_cooccurrence": ["category_a", "category_b", "p"],
    "compliance_citations": ["scenario_id", "model", "sample", "judge", "spec", "section_id"],
    "spec_sections": ["spec", "section_id", "level", "heading", "parent_id", "text"],
    "spec_section_stress": [
        "spec",
        "group_kind",
        "group",
        "family",
        "section_id",
        "heading",
        "n_problematic",
        "cited",
        "share",
    ],
}


def conf(url: str, run_dir: Path, *extra: str) -> RunConf:
    return make_conf(
        url,
        run_dir,
        *extra,
        "seed=3",
        "stages.pairs.n_pairs=6",
        "stages.scenarios.generators={claude_opus_4: 1.0, o3: 1.0}",
        f"stages.responses.models={MODELS}",
        "stages.embeddings.backend=hashing",
        "stages.disagreement.high_threshold=0.8",
        "stages.disagreement.use_ray=false",
        "stages.topics.max_scenarios=8",
        "stages.refusals.max_scenarios=4",
        "stages.refusals.scope=high",
        "stages.topics.scope=high",
        f"stages.compliance.spec={SPEC}",
        "stages.compliance.samples={random: 3, high_all: 3, high_family: 3}",
        "stages.compliance.per_bin=2",
        "stages.compliance.structured=off",  # plain prompting: its malformed answers exercise the repair
        "stages.values.max_scenarios=4",
        "stages.values.scope=high",
        "stages.values.embedding={backend: hashing}",
    )


@pytest.fixture(scope="module")
def judged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The chain once with malformed answers now and then, then the judges again on the same emulator,
    in smaller chunks: chunking must not change a call key or a row."""
    shared_file("data", "openai-model-spec", "model_spec_2025-04-11.md")  # skips on a plain clone
    run_dir = tmp_path_factory.mktemp("judges") / "run"
    with EmulatorServer(emulator_config(quirks=OutputQuirks(malformed_json=0.1))) as emu:
        first = run_pipeline(conf(emu.url, run_dir), stages=PIPELINE + JUDGING)
        before = dict(emu.stats()["ok_by_hash"])
        tables = {name: read({"dir": run_dir}, name) for name in ("topics", "refusals", "value_expressions")}
        rechunked = [f"stages.{s}.chunk_scenarios=3" for s in ("topics", "refusals", "values")]
        second = run_pipeline(conf(emu.url, run_dir, *rechunked), stages=JUDGING)
        after = dict(emu.stats()["ok_by_hash"])
    yield {
        "dir": run_dir,
        "url": emu.url,
        "first": first,
        "second": second,
        "before": before,
        "after": after,
        "tables": tables,
    }


def read(info: dict[str, Any], name: str) -> pl.DataFrame:
    return pl.read_parquet(info["dir"] / "tables" / f"{name}.parquet")


def test_tables_follow_the_contract(judged: dict[str, Any]) -> None:
    for name, columns in CONTRACT.items():
        assert read(judged, name).columns == columns, name


def test_topics_are_configured_names_of_high_disagreement_scenarios(judged: dict[str, Any]) -> None:
    topics = read(judged, "topics")
    high = read(judged, "disagreement").filter((pl.col("subset") == "all") & pl.col("high"))
    assert 0 < topics.height <= 8 and set(topics["scenario_id"]) <= set(high["scenario_id"])
    ok = topics.filter(pl.col("status") == "ok")
    assert ok.height >= topics.height - 2
    assert set(ok["topics"].explode().drop_nulls()) <= set(DEFAULT_TOPICS)
    assert topics.filter(pl.col("status") != "ok")["topics"].is_null().all()
    summary = judged["first"]["topics"]
    assert summary["ok"] == ok.height and set(summary["by_topic"]) == set(DEFAULT_TOPICS)


def test_refusal_flags_follow_the_category(judged: dict[str, Any]) -> None:
    ref = read(judged, "refusals").filter(pl.col("status") == "ok")
    assert ref.height > 0 and set(ref["category"]) <= set(CATEGORIES)
    for cat, idx, refusal, hard in ref.select("category", "category_index", "refusal", "hard_refusal").rows():
        assert CATEGORIES.index(cat) == idx and refusal == (idx >= 4) and hard == (idx == 6)
    rates = read(judged, "refusal_rates")
    overall = rates.filter(pl.col("topic") == "all")
    assert dict(overall.select("model", "n").rows()) == dict(ref.group_by("model").len().rows())
    for r in rates.iter_rows(named=True):
        assert r["refusal_ci_low"] <= r["refusal_rate"] <= r["refusal_ci_high"]
        assert r["hard_ci_low"] <= r["hard_rate"] <= r["refusal_rate"] + 1e-12


def test_compliance_verdicts_and_agreement(judged: dict[str, Any]) -> None:
    comp = read(judged, "compliance")
    judges = ["claude_sonnet_4", "o3", "gemini_2_5_pro"]
    assert set(comp["judge"]) == set(judges)
    assert (comp.group_by("scenario_id", "model").len()["len"] == 3).all()
    ok = comp.filter(pl.col("status") == "ok")
    assert (
        set(ok["decision"]) <= {"compliant", "non-compliant", "ambiguous"}
        and ok["reasoning"].is_not_null().all()
    )
    assert len(set(ok["decision"])) >= 2, "the emulated judges should not all agree on everything"
    assert (judged["dir"] / "requests" / "compliance_r1.parquet").exists(), "malformed answers were repaired"
    ver = read(judged, "compliance_verdicts")
    for n, k, m in ver.select("n_judges", "n_problematic", "majority").rows():
        assert m == majority(n, k)
    assert ver.height == comp.select("scenario_id", "model").unique().height
    summary = judged["first"]["compliance"]
    kappa = summary["fleiss_kappa"]
    assert kappa is not None and -1 <= kappa < 1
    stats = read(judged, "judge_stats")
    assert stats.filter(pl.col("metric") == "pairwise_agreement").height == 3
    rate = stats.filter((pl.col("metric") == "problematic_rate") & (pl.col("judge_a") == "o3"))[
        "value"
    ].item()
    mine = ok.filter(pl.col("judge") == "o3")["decision"]
    assert rate == pytest.approx(mine.is_in(["non-compliant", "ambiguous"]).mean())
    fam = read(judged, "compliance_summary")
    assert set(fam["family"]) == {"openai"} and {"bin", "sample"} == set(fam["group_kind"])
    assert set(fam.filter(pl.col("group_kind") == "sample")["group"]) == {"random", "high_all", "high_family"}
    for r in fam.filter(pl.col("n_scenarios") > 0).iter_rows(named=True):
        p = r["all_fail"] / r["n_scenarios"]
        assert r["frequent_noncompliance"] == pytest.approx(p)
        assert r["se"] == pytest.approx(math.sqrt(p * (1 - p) / r["n_scenarios"]))
        assert r["all_fail"] <= r["any_fail"] and r["all_pass"] + r["any_fail"] == r["n_scenarios"]
    for r in fam.filter(pl.col("n_any_judge") > 0).iter_rows(named=True):
        p = r["all_fail_any_judge"] / r["n_any_judge"]
        assert r["frequent_noncompliance_any_judge"] == pytest.approx(p)
        assert r["se_any_judge"] == pytest.approx(math.sqrt(p * (1 - p) / r["n_any_judge"]))
    # The OpenAI models are binned by their own subset's D, at most per_bin (2) per bin; any judge
    # flags at least what a majority does, on the scenarios both rules decide.
    bins = fam.filter(pl.col("group_kind") == "bin")
    assert set(bins["subset"]) == {"openai"} and bins["n_any_judge"].max() <= 2
    assert int(fam["all_fail_any_judge"].sum()) >= int(fam["all_fail"].sum())
    assert summary["frequent_noncompliance_any_judge"].keys() == summary["frequent_noncompliance"].keys()


def test_judges_cite_sections_of_the_real_spec_and_problems_are_counted_per_section(
    judged: dict[str, Any],
) -> None:
    sections = read(judged, "spec_sections")
    assert sections.height == len(read_spec(SPEC).sections) and set(sections["spec"]) == {SPEC.stem}
    cited = read(judged, "compliance_citations")
    ok = read(judged, "compliance").filter(pl.col("status") == "ok")
    keys = ["scenario_id", "model", "sample", "judge"]
    # Every valid judgement cites at least one section, and only sections of the spec.
    assert cited.select(keys).unique().height == ok.height
    assert set(cited["section_id"]) <= set(sections["section_id"])
    stress = read(judged, "spec_section_stress")
    overall = stress.filter(pl.col("group_kind") == "all")
    problematic = ok.filter(pl.col("decision") != "compliant")
    assert set(overall["n_problematic"]) == {problematic.height}
    by_hand = (
        cited.join(problematic.select(keys), on=keys)
        .unique([*keys, "section_id"])
        .group_by("section_id")
        .len()
    )
    assert dict(overall.select("section_id", "cited").iter_rows()) == dict(by_hand.iter_rows())
    assert judged["first"]["compliance"]["sections_most_cited"][0]["cited"] == overall["cited"].max()


def test_the_spec_is_a_cached_prefix_for_every_provider(judged: dict[str, Any]) -> None:
    cache = judged["first"]["compliance"]["prompt_cache"]
    assert cache["cached_input_tokens"] > 0.5 * cache["input_tokens"], (
        "the 50k-token spec should mostly be read"
    )
    assert cache["cache_write_tokens"] > 0, "Anthropic writes the marked prefix once"
    assert 0 < cache["cost_usd"] < cache["cost_without_cache_usd"]
    assert cache["saving_usd"] == pytest.approx(cache["cost_without_cache_usd"] - cache["cost_usd"], rel=1e-6)


def test_values_land_on_level2_categories(judged: dict[str, Any]) -> None:
    expr = read(judged, "value_expressions")
    names = set(load_categories(demo_taxonomy_paths()[0], level=2)["name"])
    assert expr.height > 0 and set(expr["category"]) <= names
    assert expr["distance"].is_between(0, 2).all()
    counts = read(judged, "value_counts")
    want = expr.select("scenario_id", "model", "category").unique().group_by("model", "category").len()
    got = counts.join(want, on=["model", "category"], how="full", coalesce=True)
    assert (got["count"] == got["len"]).all()
    co = read(judged, "value_cooccurrence")
    assert co["p"].is_between(0, 1).all() and set(co["category_a"]) <= names
    pairs = read(judged, "value_cooccurrence_pairs")
    assert pairs.height > 0 and (pairs["model_a"] != pairs["model_b"]).all() and (pairs["n"] > 0).all()
    assert set(pairs["model_a"]) | set(pairs["model_b"]) <= set(expr["model"])
    # The pooled table is the per-pair counts summed over pairs.
    pooled = pairs.group_by("category_a", "category_b").agg(
        ((pl.col("p") * pl.col("n")).sum() / pl.col("n").sum()).alias("want")
    )
    both = co.join(pooled, on=["category_a", "category_b"], how="full", coalesce=True)
    assert both.height == co.height and ((both["p"] - both["want"]).abs() < 1e-9).all()


def test_summaries_reach_the_manifest_and_status(judged: dict[str, Any]) -> None:
    status = run_status(str(judged["dir"]))
    json.dumps(status)
    for stage in JUDGING:
        assert status["stages"][stage]["state"] == "done"
        # The manifest holds the latest session's summary: the rerun's.
        assert status["stages"][stage]["summary"]["calls"] == judged["second"][stage]["calls"]
    assert (
        status["stages"]["compliance"]["summary"]["fleiss_kappa"]
        == judged["first"]["compliance"]["fleiss_kappa"]
    )
    lines = summary_lines(judged["first"])
    assert [ln.split(":")[0] for ln in lines] == [
        "topics",
        "refusal rate",
        "compliance",
        "prompt cache",
        "top value categories",
    ]
    assert f"Fleiss' kappa {judged['first']['compliance']['fleiss_kappa']:.3f}" in lines[2]


def test_rerun_makes_no_calls(judged: dict[str, Any]) -> None:
    assert judged["after"] == judged["before"], "a rerun sent requests the store already answered"
    for stage in JUDGING:
        made = judged["second"][stage]["calls"].get("made", 0)
        assert made == 0, stage
    assert judged["second"]["compliance"]["fleiss_kappa"] == judged["first"]["compliance"]["fleiss_kappa"]
    assert judged["second"]["values"]["top_categories"] == judged["first"]["values"]["top_categories"]


def test_smaller_chunks_give_the_same_rows(judged: dict[str, Any]) -> None:
    for name, first in judged["tables"].items():
        # Each model's schema probe goes first, so rows may come in another order: the same rows.
        keys = [c for c in ("scenario_id", "model", "sample", "judge", "phrase") if c in first.columns]
        assert read(judged, name).sort(keys).equals(first.sort(keys)), name
    requests = {p.name for p in (judged["dir"] / "requests").glob("topics_c*_r0.parquet")}
    assert {"topics_c0_r0.parquet", "topics_c2_r0.parquet"} <= requests  # 8 scenarios in chunks of 3


def test_the_default_scope_labels_a_subsets_selections_in_their_order(
    judged: dict[str, Any], tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(judged["dir"], run_dir)
    with EmulatorServer(emulator_config()) as emu:
        selected_scope = conf(emu.url, run_dir)
        selected_scope.stages.topics.scope = "selected"  # conf() sets high for the other tests
        run_pipeline(selected_scope, stages=["topics"])
    topics = pl.read_parquet(run_dir / "tables" / "topics.parquet")
    selected = read(judged, "selections").filter(pl.col("subset") == "all").sort("rank")
    assert 0 < topics.height <= 8
    assert topics["scenario_id"].to_list() == selected["scenario_id"].head(topics.height).to_list()
    with pytest.raises(ConfigError, match=r"stages\.topics\.subset': no selections for subset 'nobody'"):
        selected_scope.stages.topics.subset = "nobody"
        run_pipeline(selected_scope, stages=["topics"])


def test_estimate_shows_the_compliance_cache_saving(judged: dict[str, Any]) -> None:
    est = estimate(conf("http://127.0.0.1:9", judged["dir"], "pipeline=[compliance]")).as_dict()
    lines = [ln for ln in est["lines"] if ln["stage"] == "compliance"]
    assert {ln["model"] for ln in lines} == {"claude_sonnet_4", "o3", "gemini_2_5_pro"}
    for ln in lines:
        assert ln["cached_input_tokens"] > 0.5 * ln["input_tokens"] and ln["cache_saving_usd"] > 0
    assert est["total_cache_saving_usd"] == pytest.approx(
        sum(ln["cache_saving_usd"] for ln in lines), abs=1e-3
    )


def test_estimate_of_a_stage_stopped_part_way_counts_its_unwritten_chunks(
    judged: dict[str, Any], tmp_path: Path
) -> None:
    """The rerun judged topics in chunks of 3 (8 scenarios: 3 + 3 + 2). Estimated with the default
    chunking, the stage's plan counts all 8 calls, every one already answered. A stop after the
    second chunk leaves two tables: the plan still counts all 8, and the stored answers of the
    third chunk's calls still cost nothing."""
    run_dir = tmp_path / "run"
    shutil.copytree(judged["dir"], run_dir)

    def topics_lines(pipeline: str = "[topics]") -> list[dict[str, Any]]:
        est = estimate(conf(judged["url"], run_dir, f"pipeline={pipeline}"))  # the run's keys
        return [ln for ln in est.as_dict()["lines"] if ln["stage"] == "topics"]

    done = topics_lines()
    assert [(ln["calls"], ln["to_make"], ln["exact"]) for ln in done] == [(8, 0, True)]
    (run_dir / "requests" / "topics_c2_r0.parquet").unlink()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest["stages"]["topics"]["state"] = "stopped"
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    stopped = topics_lines()
    assert [(ln["calls"], ln["to_make"], ln["exact"]) for ln in stopped] == [(8, 0, True)]
    assert stopped[0]["cost_usd"] == done[0]["cost_usd"] == 0
    # Behind a stage that has not finished, the inputs may still change, so topics cannot plan:
    # its written tables count exactly, its unwritten chunk from config.
    manifest["stages"]["disagreement"]["state"] = "stopped"
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    behind = topics_lines("[disagreement,topics]")
    assert [(ln["calls"], ln["to_make"], ln["exact"]) for ln in behind] == [(8, 2, False)]
    assert behind[0]["cost_usd"] > done[0]["cost_usd"]
