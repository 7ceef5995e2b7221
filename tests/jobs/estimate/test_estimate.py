"""`specstress estimate` against a real run of the demo config on the emulator: calls per stage within 5%."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from actors.store import CallStore
from jobs.config import load_config
from jobs.engine.rundir import RunDir
from jobs.estimate.estimate import estimate, format_estimate
from jobs.outputs.report.facts import stage_of
from jobs.paper.figures import DIVERSE_SHARE
from tests.jobs.estimate.test_estimate_requests import assert_same_lines

DEMO = Path(__file__).resolve().parents[3] / "conf" / "demo.yaml"
CLEAN = [f"emulator.quirks.{q}=0" for q in ("refusal", "drop_tag", "truncate", "malformed_json")]
"""Emulated models that never refuse or break format: every generation is kept and no answer needs a
repair, which is what the estimate's config-counted lines assume (they are upper bounds otherwise)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


SELECTION = ["pairs", "scenarios", "embeddings", "diversity"]
"""The stages whose calls the estimate counts from config alone. Which scenarios the responses answer
depends on the diversity table: before it exists the paper's kept share is assumed, so the answering
stages' estimate is checked once it exists."""
UPSTREAM = [*SELECTION, "responses", "rubrics", "scores", "disagreement"]
"""Then the judges' scopes depend on the disagreement table: their estimate is checked once it exists."""


def run_demo(overrides: list[str]) -> str:
    """The demo as a user runs it: its own process, its own local Ray, the emulator's throwaway keys;
    returns what it printed."""
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    done = subprocess.run(
        [sys.executable, "-m", "jobs.cli", "run", str(DEMO), *overrides],
        env=env,
        capture_output=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    return done.stdout.decode()


def calls_by_stage(lines: list[dict], pipeline: list[str], key: str) -> dict[str, int]:
    """Calls per stage; the value phrases' embeddings are counted apart from the value listing."""
    out: dict[str, int] = {}
    for line in lines:
        stage = stage_of(line["stage"], [*pipeline, "values_embeddings"])
        out[stage] = out.get(stage, 0) + line[key]
    return out


def test_estimate_matches_the_demo_runs_calls_per_stage(tmp_path: Path) -> None:
    overrides = [
        f"run_dir={tmp_path / 'run'}",
        f"cache_dir={tmp_path / 'cache'}",
        f"emulator.port={free_port()}",
        "stages.pairs.n_pairs=8",
        *CLEAN,
    ]
    conf = load_config(DEMO, overrides)
    pipeline = list(conf.pipeline)
    assert pipeline[: len(UPSTREAM)] == UPSTREAM
    before = estimate(conf)
    predicted = calls_by_stage(before.as_dict()["lines"], pipeline, "to_make")
    made: dict[str, int] = {}
    neutral_made = 0
    printed = ""
    for part, done in ((SELECTION, []), (UPSTREAM, SELECTION), (pipeline, UPSTREAM)):
        if done:  # the scenarios these stages see are known now: estimate them before they run
            now = calls_by_stage(estimate(conf).as_dict()["lines"], pipeline, "to_make")
            predicted |= {stage: now[stage] for stage in part[len(done) :] if stage in now}
        printed = run_demo([*overrides, f"pipeline=[{','.join(part)}]"])
        manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
        calls = [{"stage": name, **figures} for name, figures in manifest["calls"].items()]
        made |= {k: v for k, v in calls_by_stage(calls, pipeline, "made").items() if v}
        neutral_made = neutral_made or manifest["calls"]["scenarios_neutral"]["made"]

    assert set(predicted) == set(made) == {
        "scenarios", "responses", "rubrics", "scores", "embeddings", "topics", "refusals", "compliance", "values",
        "values_embeddings",
    }  # fmt: skip
    # Phrase embeddings depend on how many phrases come back: the estimate is an upper bound.
    assert predicted.pop("values_embeddings") >= made.pop("values_embeddings")
    for stage, n in made.items():
        assert abs(predicted[stage] - n) <= 0.05 * n, (stage, predicted[stage], n)
    # The neutral generations are built exactly, before anything runs.
    neutral = sum(ln.to_make for ln in before.lines if ln.stage == "scenarios_neutral")
    assert neutral == neutral_made == 8
    # The whole demo's output ends with what selection saved (nothing new was made in the last part).
    assert "scenarios removed before answering" in printed
    # Every figure the issue asks for is there, with the limit that binds each stage.
    assert before.binding.keys() == {ln.stage for ln in before.lines}
    assert all(w > 0 for w in before.wall_s.values())
    assert "stored tok" in format_estimate(before) and "binding:" in format_estimate(before)

    after = estimate(conf).as_dict()
    assert after["total_to_make"] == 0 and after["total_cost_usd"] == 0
    assert after["total_stored_usd"] > 0
    assert all(ln["cached"] == ln["calls"] for ln in after["lines"])

    # On the run's own requests tables, with half its calls in the store, reading the stored keys
    # column-wise gives the lines that hashing every request again, row by row, gives.
    run, half = RunDir.open(conf.run_dir), CallStore(str(tmp_path / "cache")).answered_keys()[::2]
    for stage in (
        "scenarios_biased",
        "rubrics",
        "scores",
        "embeddings",
        *pipeline[len(UPSTREAM) :],
        "values_embeddings",
    ):
        assert_same_lines(conf, run, stage, half)
    compliance = assert_same_lines(conf, run, "compliance", half)
    assert 0 < sum(ln.cached for ln in compliance) < sum(ln.calls for ln in compliance)
    assert all(ln.cached_input_tokens > 0 for ln in compliance)
    assert any(ln.cache_write_tokens > 0 for ln in compliance)


def test_run_over_budget_refuses_and_points_to_the_estimate(tmp_path: Path) -> None:
    overrides = [f"run_dir={tmp_path / 'run'}", f"emulator.port={free_port()}", "stages.pairs.n_pairs=8"]
    # A budget the first calling stage fits in but the whole run does not: refused before it starts.
    est = estimate(load_config(DEMO, overrides))
    first = sum(c for (stage, _), c in est.cost.items() if stage.startswith("scenarios"))
    budget = 2 * first
    assert budget < sum(est.cost.values())
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    done = subprocess.run(
        [sys.executable, "-m", "jobs.cli", "run", str(DEMO), *overrides, f"budget_usd={budget}"],
        env=env,
        capture_output=True,
        timeout=300,
    )
    err = done.stderr.decode()
    assert done.returncode == 3, err[-3000:]
    assert "the run's calls still to make" in err and f"over budget_usd=${budget:.2f}" in err
    assert "nothing was sent" in err and "specstress estimate" in err
    assert not list((tmp_path / "run" / "cache" / "calls").glob("part-*.parquet"))


def test_before_diversity_runs_the_estimate_expects_the_papers_kept_share(tmp_path: Path) -> None:
    n_scen = 3 * 20
    kept = round(n_scen * DIVERSE_SHARE)
    overrides = [f"run_dir={tmp_path / 'run'}", "stages.pairs.n_pairs=20"]
    diverse = estimate(load_config(DEMO, overrides))
    d = diverse.as_dict()
    responses = [ln for ln in d["lines"] if ln["stage"] == "responses"]
    assert len(responses) == 12 and all(ln["calls"] == kept and not ln["exact"] for ln in responses)
    assert [ln["calls"] for ln in d["lines"] if ln["stage"] == "scores"] == [kept]
    selection = d["selection"]
    assert (selection["scenarios"], selection["answered"], selection["counted"]) == (n_scen, kept, False)
    assert selection["calls_spared"] == {
        "responses": 12 * (n_scen - kept),
        "rubrics": 0,
        "scores": n_scen - kept,
    }
    text = format_estimate(diverse)
    assert f"selection: {kept} of {n_scen} scenarios answered, the δ-diverse ones (~ expected" in text
    # The whole run's time: overlapping never takes longer, and nothing beats the lower bound.
    sch = d["schedule"]
    assert 0 < sch["lower_bound_s"] <= sch["overlapped_s"] <= sch["sequential_s"]
    # (Unrounded: each stage's time and the sum are rounded to 0.1 s apart in as_dict.)
    assert diverse.schedule is not None
    assert diverse.schedule.sequential_s == pytest.approx(sum(diverse.wall_s.values()), rel=1e-3)
    assert "end to end at the limits: " in text and "no schedule beats" in text
    assert f"selection spares ~{12 * (n_scen - kept)} responses, ~{n_scen - kept} scores calls" in text

    every = estimate(load_config(DEMO, [*overrides, "stages.responses.scope=all"])).as_dict()
    assert all(ln["calls"] == n_scen for ln in every["lines"] if ln["stage"] == "responses")
    assert every["selection"]["calls_spared"] == {"responses": 0, "rubrics": 0, "scores": 0}
    # What selection spares is what answering everything adds to those stages.
    added = sum(ln["cost_usd"] for ln in every["lines"] if ln["stage"] in ("responses", "scores"))
    added -= sum(ln["cost_usd"] for ln in d["lines"] if ln["stage"] in ("responses", "scores"))
    assert abs(added - selection["usd_spared"]) < 0.01


def test_before_disagreement_runs_compliance_counts_its_draws_at_most_every_scenario(tmp_path: Path) -> None:
    base = [f"run_dir={tmp_path / 'run'}", "stages.pairs.n_pairs=40"]
    kept = round(3 * 40 * DIVERSE_SHARE)
    # The demo judges two versions and two families by default; one spec and the OpenAI family here.
    overrides = [
        *base,
        "stages.compliance.specs=null",
        "stages.compliance.families=null",
        "stages.compliance.family_specs=null",
        "stages.compliance.samples={random: 4, high_all: 4, high_family: 4}",
        "stages.compliance.per_bin=3",
        "stages.compliance.bin_subset=null",  # each family by its own D, not the demo's OpenAI D for both
        "stages.compliance.models=null",  # every answering model's responses, not the demo's ten
    ]

    def judged(*extra: str) -> set[int]:
        lines = estimate(load_config(DEMO, [*overrides, *extra])).as_dict()["lines"]
        per_judge = {ln["calls"] for ln in lines if ln["stage"] == "compliance"}
        return {n // 12 for n in per_judge}  # every judge sees the same 12 models' responses

    # 4 + 4 + 4 (one family, the OpenAI models) and 3 in each of 5 bins of their D.
    assert judged() == {4 + 4 + 4 + 3 * 5}
    # Two families, each binned by its own subset: twice the bins and the family sample.
    two = "stages.compliance.families={openai: [o3, o4_mini], claude: [claude_opus_4, claude_sonnet_4]}"
    assert judged(two) == {4 + 4 + 2 * 4 + 2 * 3 * 5}
    assert judged(two, "stages.compliance.bin_subset=all") == {4 + 4 + 2 * 4 + 3 * 5}
    # Draws larger than the scenarios, or whole bins, are bounded by the scenarios answered.
    assert judged("stages.compliance.per_bin=100") == judged("stages.compliance.per_bin=null") == {kept}
    # The demo as shipped: 2 + 2 + 2 * 2 and 3 in each of 5 bins of the OpenAI models' D, which bins
    # both families; each response of the 5 OpenAI models judged against both versions, the 5
    # Claude models' against the revised one: 15 judgements per scenario.
    demo = estimate(load_config(DEMO, base)).as_dict()["lines"]
    assert {ln["calls"] for ln in demo if ln["stage"] == "compliance"} == {(2 + 2 + 2 * 2 + 3 * 5) * 15}


def test_before_disagreement_runs_each_spec_version_is_priced_for_the_models_judged_against_it(
    tmp_path: Path,
) -> None:
    data = DEMO.parents[1] / "jobs" / "data"
    base = [f"run_dir={tmp_path / 'run'}", "stages.pairs.n_pairs=40", "stages.compliance.models=null"]
    versions = f"stages.compliance.specs={{v1: {data / 'demo_spec.md'}, v2: {data / 'demo_spec_revised.md'}}}"
    families = "stages.compliance.families={openai: [o3, o4_mini], claude: [claude_opus_4, claude_sonnet_4]}"

    def lines(*extra: str) -> dict[str, dict]:
        found = estimate(load_config(DEMO, [*base, families, *extra])).as_dict()["lines"]
        return {ln["model"]: ln for ln in found if ln["stage"] == "compliance"}

    one = lines("stages.compliance.specs=null", "stages.compliance.family_specs=null")
    both = lines(versions, "stages.compliance.family_specs=null")
    # Every model's responses are judged twice; the Claude family against v2 only: 12 + 10 of 12.
    only_v2 = lines(versions, "stages.compliance.family_specs={claude: [v2]}")
    for judge in ("claude_sonnet_4", "o3", "gemini_2_5_pro"):
        assert both[judge]["calls"] == 2 * one[judge]["calls"]
        assert only_v2[judge]["calls"] == one[judge]["calls"] * 22 // 12
    # Each version's part of each judge's line: its calls, its own cache write, its cost and saving.
    est = estimate(
        load_config(DEMO, [*base, families, versions, "stages.compliance.family_specs={claude: [v2]}"])
    )
    parts = [r for r in est.as_dict()["spec_versions"] if r["stage"] == "compliance"]
    assert {(r["model"], r["version"]) for r in parts} == {
        (j, v) for j in ("claude_sonnet_4", "o3", "gemini_2_5_pro") for v in ("v1", "v2")
    }
    for r in parts:
        assert r["calls"] == one[r["model"]]["calls"] * (10 if r["version"] == "v1" else 12) // 12
        assert r["cost_usd"] > 0 and r["cache_saving_usd"] > 0
        assert (r["cache_write_tokens"] > 0) == (r["model"] == "claude_sonnet_4")
    for judge, line in {ln.model: ln for ln in est.lines if ln.stage == "compliance"}.items():
        assert sum(r["calls"] for r in parts if r["model"] == judge) == line.calls
        by_version = sum(r["cost_usd"] for r in parts if r["model"] == judge)
        assert by_version == pytest.approx(est.cost[("compliance", judge)], abs=1e-3)
    printed = format_estimate(est)
    assert "spec version v1 (compliance" in printed and "spec version v2 (compliance" in printed
