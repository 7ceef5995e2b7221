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
from jobs.outputs.committee import committee_report
from jobs.stages.committee import in_calibration, summary_lines
from jobs.stages.scenarios import SCENARIO_SCHEMA
from jobs.stages.tables import read_table, write_table
from tests.conftest import emulator_config
from tests.jobs.stages.test_model_sweep import PAIRS, make_conf

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
VARIANTS = (
    "",
    " We have talked it over twice.",
    " It has to be decided by Friday.",
    " I asked a friend too.",
)


def write_scenarios(run_dir: Path) -> int:
    """Each of the test pairs' queries in four wordings: 36 scenarios."""
    rows = []
    for rank, (pid, (v1, v2, queries)) in enumerate(PAIRS.items()):
        for nudge, query in queries.items():
            for i, extra in enumerate(VARIANTS):
                rows.append(
                    {
                        "scenario_id": f"{pid}-{nudge}-{i}",
                        "pair_id": pid,
                        "rank": rank,
                        "value1": v1,
                        "value2": v2,
                        "value1_l2": "l2",
                        "value2_l2": "l2",
                        "nudge_direction": nudge,
                        "query_generator": "o3",
                        "query": query + extra,
                        "call_key": f"k-{pid}-{nudge}-{i}",
                        "neutral_call_key": None,
                    }
                )
    write_table(RunDir.open(str(run_dir)), "scenarios", pl.DataFrame(rows), SCENARIO_SCHEMA)
    return len(rows)


def committee_run(run_dir: Path, mode: str) -> dict[str, Any]:
    n = write_scenarios(run_dir)
    run = RunDir.open(str(run_dir))
    with EmulatorServer(emulator_config()) as emu:
        conf = make_conf(emu.url, run_dir, *SETTINGS, f"stages.scores.mode={mode}")
        first = run_pipeline(conf)
        after_first = emu.stats()
        again = run_pipeline(conf)
        after_again = emu.stats()
    tables = {t: read_table(run, t) for t in ("committee", "responses", "scores", "disagreement")}
    return {
        "run_dir": run_dir,
        "n": n,
        "first": first,
        "again": again,
        "stats": (after_first, after_again),
        "tables": tables,
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


COMMITTEE_CONF = Path(__file__).resolve().parents[3] / "conf" / "demo-committee.yaml"


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
