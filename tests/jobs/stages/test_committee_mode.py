"""Committee mode end to end on the emulator: the committee answers everything, the other models
exactly the calibration sample and the scenarios the rule sent on; the scoring is never paid
twice; a rerun pays nothing; D over a subset is left out where its models were not all asked."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from actors.emulator.server import EmulatorServer
from actors.errors import ConfigError
from jobs.analysis.committee import choose_threshold
from jobs.config import load_config
from jobs.driver import run_pipeline
from jobs.engine.rundir import RunDir
from jobs.estimate.estimate import estimate
from jobs.outputs.committee import committee_report
from jobs.outputs.report.sections_analysis import disagreement_section
from jobs.outputs.report.sources import RunSources
from jobs.stages.committee import in_calibration, summary_lines
from jobs.stages.tables import read_table
from tests.conftest import emulator_config
from tests.jobs.stages.test_model_sweep import make_conf, write_scenarios

pytestmark = pytest.mark.usefixtures("ray_local")

MODELS = ["claude_sonnet_4", "gpt_4_1", "gemini_2_5_pro", "o3", "grok_4"]
COMMITTEE = ["gpt_4_1", "gemini_2_5_pro"]
OTHERS = sorted(set(MODELS) - set(COMMITTEE))
SETTINGS = (
    "pipeline=[embeddings,rubrics,responses,scores,disagreement]",
    f"stages.responses.models=[{','.join(MODELS)}]",
    f"stages.responses.committee.models=[{','.join(COMMITTEE)}]",
    "stages.responses.committee.calibration_share=0.4",
    "stages.responses.committee.target_recall=0.8",
    "stages.embeddings.backend=api",
    "stages.embeddings.model=text_embedding_3_small",
)
COMMITTEE_CONF = Path(__file__).resolve().parents[3] / "conf" / "demo-committee.yaml"
VARIANTS = (
    "",
    " We have talked it over twice.",
    " It has to be decided by Friday.",
    " I asked a friend too.",
)


def committee_run(run_dir: Path, mode: str) -> dict[str, Any]:
    n = write_scenarios(run_dir, VARIANTS)  # 36 scenarios
    run = RunDir.open(str(run_dir))
    with EmulatorServer(emulator_config()) as emu:
        conf = make_conf(emu.url, run_dir, *SETTINGS, f"stages.scores.mode={mode}", "budget_usd=1000")
        first = run_pipeline(conf)
        after_first = emu.stats()
        again = run_pipeline(conf)
        after_again = emu.stats()
        estimated = estimate(conf).as_dict()
    tables = {t: read_table(run, t) for t in ("committee", "responses", "scores", "disagreement")}
    return {
        "run_dir": run_dir,
        "n": n,
        "first": first,
        "again": again,
        "stats": (after_first, after_again),
        "tables": tables,
        "estimate": estimated,
    }


@pytest.fixture(scope="module")
def joint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    yield committee_run(tmp_path_factory.mktemp("committee") / "run", "joint")


@pytest.fixture(scope="module")
def per_response(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    yield committee_run(tmp_path_factory.mktemp("committee_pr") / "run", "per_response")


def _asked(responses: pl.DataFrame, model: str) -> set[str]:
    return set(responses.filter(pl.col("model") == model)["scenario_id"])


@pytest.mark.parametrize("which", ["joint", "per_response"])
def test_others_answer_exactly_what_the_rule_picked(which: str, request: pytest.FixtureRequest) -> None:
    r = request.getfixturevalue(which)
    t, n = r["tables"]["committee"], r["n"]
    responses = r["tables"]["responses"]
    assert t.height == n
    # The calibration draw is the seeded one, and every model answered it.
    calibration = set(t.filter(pl.col("calibration"))["scenario_id"])
    assert calibration == {sid for sid in t["scenario_id"] if in_calibration(sid, 0, 0.4)}
    assert 0 < len(calibration) < n
    for m in COMMITTEE:
        assert _asked(responses, m) == set(t["scenario_id"])
    # The threshold is the one chosen on the calibration rows; the rest went on where D reached it.
    cal = t.filter(pl.col("calibration"))
    chosen = choose_threshold(cal["committee_d"].to_numpy(), cal["full_d"].to_numpy(), 0.8)
    record = r["first"]["responses"]["committee"]
    assert record["threshold"] == chosen.threshold
    assert record["high_in_calibration"] == chosen.n_high
    reaches = np.where(np.isnan(t["committee_d"].to_numpy()), np.inf, t["committee_d"].to_numpy())
    picked = set(t.filter(pl.Series(reaches >= chosen.threshold))["scenario_id"]) | calibration
    assert set(t.filter(pl.col("sent"))["scenario_id"]) == picked
    for m in OTHERS:
        assert _asked(responses, m) == picked
    assert record["sent"] == len(picked) and record["scenarios"] == n
    # Only calibration scenarios carry the full D.
    assert t.filter(~pl.col("calibration"))["full_d"].null_count() == n - len(calibration)


def test_nothing_is_paid_twice_and_a_rerun_pays_nothing(
    joint: dict[str, Any], per_response: dict[str, Any]
) -> None:
    for r in (joint, per_response):
        first, again = r["stats"]
        assert set(first["ok_by_hash"].values()) == {1}
        assert again["total"] == first["total"]
        before, after = (dict(r[k]["responses"]["committee"]) for k in ("first", "again"))
        assert after.pop("committee_scoring")["calls"]["made"] == 0
        before.pop("committee_scoring")
        assert after == before
        assert r["again"]["scores"]["calls"]["made"] == 0


def test_joint_scoring_scores_anew_only_the_scenarios_sent_on(joint: dict[str, Any]) -> None:
    t = joint["tables"]["committee"]
    sent_later = t.filter(pl.col("sent") & ~pl.col("calibration")).height
    stopped = t.filter(~pl.col("sent")).height
    scores = joint["first"]["scores"]
    # Committee-only and calibration scenarios were scored in committee mode: the store answers them.
    assert scores["calls"]["made"] == sent_later
    assert scores["committee_only_scenarios"] == stopped
    # A scenario only the committee answered is scored on the committee's responses alone.
    rows = joint["tables"]["scores"]
    only = set(t.filter(~pl.col("sent"))["scenario_id"])
    assert set(rows.filter(pl.col("scenario_id").is_in(only))["model"]) <= set(COMMITTEE)


def test_per_response_scoring_scores_each_response_once(per_response: dict[str, Any]) -> None:
    rows = per_response["tables"]["scores"].filter(pl.col("value_slot") == 1)
    # One scoring call per response (the emulator answered no request twice: the test above).
    assert rows["call_key"].n_unique() == rows.height == per_response["tables"]["responses"].height
    # The scores stage made only the calls for the other models' responses the committee round left.
    t = per_response["tables"]["committee"]
    later = t.filter(pl.col("sent") & ~pl.col("calibration")).height * len(OTHERS)
    assert per_response["first"]["scores"]["calls"]["made"] == later


def test_d_is_left_out_where_a_subset_was_not_asked(joint: dict[str, Any]) -> None:
    t, d = joint["tables"]["committee"], joint["tables"]["disagreement"]
    stopped = set(t.filter(~pl.col("sent"))["scenario_id"])
    summary = joint["first"]["disagreement"]["subsets"]
    for name, counts in summary.items():
        rows = d.filter(pl.col("subset") == name)
        gone = set(rows.filter(pl.col("d").is_null())["scenario_id"])
        assert gone >= stopped and counts["not_asked"] == len(stopped)
    assert stopped, "the rule sent every scenario on: the test shows nothing"


def test_the_summary_prints_recall_and_cost_share(joint: dict[str, Any]) -> None:
    c = joint["first"]["responses"]["committee"]
    low, high = c["recall_interval"]
    assert c["recall"] is not None and low <= c["recall"] <= high
    assert 0 < c["cost_share"] < 1 and c["full_sweep_usd"] > c["responses_usd"]
    lines = summary_lines(joint["first"])
    assert f"recall {c['recall']:.0%}" in lines[0] and "95% interval" in lines[0]
    assert f"{c['cost_share']:.0%} of a full sweep" in lines[1]


@pytest.mark.parametrize(
    ("override", "error"),
    [
        ("stages.responses.committee.models=[o3,nobody]", r"committee\.models': unknown model key"),
        ("stages.responses.committee.models=[o3]", r"committee\.models': needs at least two"),
        ("stages.responses.committee.calibration_share=0", r"committee\.calibration_share'"),
        ("stages.responses.committee.target_recall=1.5", r"committee\.target_recall'"),
        ("stages.responses.samples=2", r"committee': committee mode compares one answer"),
        (
            "pipeline=[pairs,scenarios,embeddings,diversity,responses,rubrics,scores]",
            r"stage 'responses' reads table 'rubrics' \(stages\.responses\.committee makes it read it\)",
        ),
    ],
)
def test_committee_settings_are_checked_at_load(override: str, error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        load_config(COMMITTEE_CONF, [override])


def test_the_offline_plan_of_a_committee_run_uses_its_calibration_sample(joint: dict[str, Any]) -> None:
    t = joint["tables"]["committee"]
    report = committee_report(str(joint["run_dir"]), models=COMMITTEE, targets=(0.8,))
    assert report.n == t.filter(pl.col("calibration") & pl.col("full_d").is_not_null()).height
    assert any("calibration scenarios" in note for note in report.notes)
    # Its committee D is the one scored with every model in view, so its threshold may differ from
    # the run's; the high count is the run's own on the same scenarios.
    assert report.n_high == joint["first"]["responses"]["committee"]["high_in_calibration"]


def test_the_estimate_of_a_finished_committee_run_is_exact(joint: dict[str, Any]) -> None:
    est, t = joint["estimate"], joint["tables"]["committee"]
    lines = {ln["model"]: ln for ln in est["lines"] if ln["stage"] == "responses"}
    sent = t["sent"].sum()
    assert {m: ln["calls"] for m, ln in lines.items()} == {
        m: (t.height if m in COMMITTEE else sent) for m in MODELS
    }
    assert all(ln["exact"] and ln["to_make"] == 0 for ln in lines.values())
    plans = est["budget_plans"]
    assert plans["sent_share_measured"] and plans["sent_share"] == pytest.approx(sent / t.height, abs=1e-4)


def test_the_estimate_before_a_committee_run_counts_the_expected_share(tmp_path: Path) -> None:
    conf = load_config(COMMITTEE_CONF, [f"run_dir={tmp_path / 'run'}", "budget_usd=1000"])
    est = estimate(conf).as_dict()
    cc = conf.stages.responses.committee
    share = cc.calibration_share + (1 - cc.calibration_share) * cc.expected_share
    kept = est["selection"]["answered"]
    lines = {ln["model"]: ln for ln in est["lines"] if ln["stage"] == "responses"}
    for m, ln in lines.items():
        assert ln["calls"] == (kept if m in cc.models else round(kept * share)) and not ln["exact"]
    [scores] = [ln for ln in est["lines"] if ln["stage"] == "scores"]
    assert scores["calls"] == kept + round(kept * share)  # joint: committee-only, then every model's
    plans = est["budget_plans"]
    assert not plans["sent_share_measured"] and plans["sent_share"] == pytest.approx(share)
    # What each plan buys follows from its cost per scenario.
    left = 1000 - plans["other_stages_usd"]
    assert plans["full_sweep_scenarios"] == int(left // plans["full_sweep_usd_per_scenario"])
    assert plans["committee_scenarios"] == int(left // plans["committee_usd_per_scenario"])
    assert plans["committee_usd_per_scenario"] < plans["full_sweep_usd_per_scenario"]


def test_the_report_says_where_d_was_not_computed(joint: dict[str, Any]) -> None:
    sec = disagreement_section(RunSources.open(str(joint["run_dir"])))
    c = joint["first"]["responses"]["committee"]
    stopped = c["scenarios"] - c["sent"]
    [note] = [n for n in sec.notes if n.startswith("Committee mode")]
    assert f"the {stopped} scenarios only the committee answered have no D" in note
    [table] = [t for t in sec.tables if t.caption.startswith("Committee mode")]
    assert table.rows[0][0] == str(c["calibration"]) and table.rows[0][1] == str(c["high_in_calibration"])
