"""`specstress committee` on a synthetic run directory: figures, JSON, and errors that name the problem."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from jobs.cli import main
from tests.release_run import ResumedRun

# Three models; value 2 is 3 for everyone. Value 1 (A, B, C):
#        A  B  C   full D (population std)                 {A,B}
# s1     0  6  3   mean 3, (9+9+0)/3 = 6 -> 2.449 high      3
# s2     3  3  0   mean 2, (1+1+4)/3 = 2 -> 1.414           0
# s3     0  0  6   mean 2, (4+4+16)/3 = 8 -> 2.828 high     0
# s4     3  3  3   0                                        0
VALUE1 = {"s1": (0, 6, 3), "s2": (3, 3, 0), "s3": (0, 0, 6), "s4": (3, 3, 3)}
MODELS = ("A", "B", "C")


def write_run(
    root: Path,
    *,
    costs: dict[str, float | None] | None = None,
    config: str = "",
    tables: tuple[str, ...] = ("scores", "responses"),
) -> Path:
    costs = costs or {"A": 0.01, "B": 0.02, "C": 0.07}
    (root / "tables").mkdir(parents=True)
    (root / "manifest.json").write_text(json.dumps({"run_id": "synthetic", "stages": {}, "sessions": []}))
    (root / "config.yaml").write_text(config)
    scores, responses = [], []
    for sid, positions in VALUE1.items():
        for m, p in zip(MODELS, positions, strict=True):
            scores += [(sid, m, 0, 1, p, "ok"), (sid, m, 0, 2, 3, "ok")]
            responses.append((sid, m, 0, costs[m], "ok"))
    # A failed score is not a position.
    scores.append(("s4", "C", 1, 1, None, "failed"))
    if "scores" in tables:
        pl.DataFrame(
            scores,
            schema=["scenario_id", "model", "sample", "value_slot", "position", "status"],
            orient="row",
        ).write_parquet(root / "tables" / "scores.parquet")
    if "responses" in tables:
        pl.DataFrame(
            responses,
            schema={
                "scenario_id": pl.String,
                "model": pl.String,
                "sample": pl.Int64,
                "cost_usd": pl.Float64,
                "status": pl.String,
            },
            orient="row",
        ).write_parquet(root / "tables" / "responses.parquet")
    return root


def test_a_given_committee_in_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = write_run(tmp_path / "run")
    assert main(["committee", str(run), "--models", "A,B", "--targets", "0.5,1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["scenarios"], out["high"], out["search"], out["cost_basis"]) == (4, 2, "given", "usd")
    (plan,) = out["plans"]
    # {A,B} pays 0.03 of 0.10 alone.
    assert plan["committee"] == ["A", "B"] and plan["floor"] == pytest.approx(0.3)
    half, full = plan["targets"]
    # 0.5: one of the high s1 (D 3) and s3 (D 0): threshold 3 sends s1 alone, (0.03 + 0.07/4) / 0.1.
    assert (half["threshold"], half["hits"], half["sent"]) == (3.0, 1, 1)
    assert half["cost_share"] == pytest.approx(0.475)
    # 1.0: down to 0, everything sent, the full cost.
    assert (full["threshold"], full["recall"], full["sent"], full["cost_share"]) == (
        0.0,
        1.0,
        4,
        pytest.approx(1.0),
    )
    # Curve: committee Ds 0 and 3, then none sent (threshold null in JSON for inf).
    assert [(p["threshold"], p["sent"]) for p in plan["curve"]] == [(0.0, 4), (3.0, 1), (None, 0)]
    assert any("not scoring calls" in n for n in out["notes"])
    assert any("approximate" in n for n in out["notes"])


def test_the_greedy_path_in_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = write_run(tmp_path / "run")
    assert main(["committee", str(run), "--k", "2"]) == 0
    text = capsys.readouterr().out
    # Size 1: the cheapest, A. Size 2 at 0.9 (both high ones): {A,B} needs 0 (sends all, 1.0);
    # {A,C}: s1 1.5, s2 1.5, s3 3, s4 0 -> threshold 1.5 sends s1 s2 s3, (0.08 + 0.02 x 3/4) / 0.1 = 0.95.
    assert "greedy search" in text
    assert "   2  C " in text and "95.0%" in text
    assert "committee A, C (answering every scenario alone: 80.0% of the cost)" in text
    assert "note: cost shares count responses only" in text


def test_the_config_sets_the_sample_and_the_all_subset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = write_run(
        tmp_path / "run", config="stages:\n  disagreement: {sample: 0, subsets: {all: [A, B, C]}}\n"
    )
    assert main(["committee", str(run), "--models", "B,C", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["models"] == ["A", "B", "C"]


def test_imported_runs_without_costs_count_responses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = write_run(tmp_path / "run", costs=dict.fromkeys(MODELS, None))
    assert main(["committee", str(run), "--models", "A,B", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["cost_basis"] == "responses" and out["plans"][0]["floor"] == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--models", "A,Z"], "models ['Z'] are not among the run's scored models"),
        (["--models", "A"], "needs two or more models"),
        (["--models", "A,B,C"], "leaves no one to send scenarios to"),
        (["--k", "3"], "k must be at least 2 and below the run's 3 scored models"),
        (["--targets", "0.9,1.5"], "each target recall must be in (0, 1]"),
    ],
)
def test_bad_committees_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    run = write_run(tmp_path / "run")
    assert main(["committee", str(run), *args]) == 1
    assert message in capsys.readouterr().err


def test_a_missing_run_or_table_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["committee", str(tmp_path / "nowhere")]) == 1
    assert "no manifest.json in" in capsys.readouterr().err
    run = write_run(tmp_path / "run", tables=("scores",))
    assert main(["committee", str(run)]) == 1
    assert "table 'responses' is missing" in capsys.readouterr().err


def test_on_a_completed_demo_run(release_run: ResumedRun, capsys: pytest.CaptureFixture[str]) -> None:
    # The release fixture is a finished demo run of the twelve emulated models (tests/release_run.py).
    assert main(["committee", str(release_run.run_dir), "--k", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["models"]) == 12 and out["cost_basis"] == "usd" and out["scenarios"] > 0
    sizes = [len(p["committee"]) for p in out["plans"]]
    assert sizes == [1, 2]
    final = out["plans"][-1]
    for p in final["targets"]:
        # A target recall is reached (or there was no high scenario) at a share between the floor and 1.
        assert p["recall"] is None or p["recall"] >= p["target"]
        assert final["floor"] <= p["cost_share"] <= 1 + 1e-9
    assert main(["committee", str(release_run.run_dir), "--models", ",".join(final["committee"])]) == 0
    assert f"committee {', '.join(final['committee'])}" in capsys.readouterr().out
