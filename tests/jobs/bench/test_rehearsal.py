"""`specstress bench rehearsal`: every stage at a fraction of the paper, measured stage by stage."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from jobs.bench.rehearsal import DEMO, growth, overrides, unlimited
from jobs.config import load_config


def test_the_rehearsal_config_lifts_every_limit_and_judges_the_papers_scopes(tmp_path: Path) -> None:
    given = overrides(str(tmp_path / "run"), 8799, 3000, None)
    limited = load_config(DEMO, given)
    conf = load_config(DEMO, [*given, *unlimited(limited)])
    assert conf.stages.pairs.n_pairs == 3000 and not conf.emulator.enabled
    assert all(a.limits.rpm >= 1e9 and a.limits.output_tpm >= 1e12 for a in conf.accounts.values())
    assert all(lim.rpm >= 1e9 for lim in conf.emulator.limits.values()) and conf.emulator.limits
    assert conf.emulator.latency_fixed_s == conf.emulator.latency_per_output_token_s == 0
    assert limited.accounts["anthropic"].limits.rpm == 3000  # the estimate's limits stay the demo's
    assert (conf.stages.topics.scope, conf.stages.topics.max_scenarios) == ("selected", None)
    assert conf.stages.compliance.per_bin == 200 and conf.stages.compliance.models == [
        "gpt_4_1", "gpt_4_1_mini", "gpt_4o", "o3", "o4_mini",
    ]  # fmt: skip


def test_growth_is_time_per_row_against_the_smaller_run() -> None:
    def run(wall: float, rows: int, mb: float) -> dict:
        return {"stages": [{"stage": "responses", "wall_s": wall, "rows": rows, "driver_peak_mb": mb}]}

    # 10x the rows in 20x the time: twice the time per row.
    got = growth(run(2.0, 100, 400.0), run(40.0, 1000, 500.0))
    assert got == {"responses": {"rows_ratio": 10.0, "time_per_row_ratio": 2.0, "driver_mb_ratio": 1.25}}
    assert growth(run(0.0, 0, 0.0), run(1.0, 5, 1.0))["responses"] == {
        "rows_ratio": None,
        "time_per_row_ratio": None,
        "driver_mb_ratio": None,
    }


@pytest.mark.slow
def test_the_quick_rehearsal_measures_every_stage_at_two_sizes() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "jobs.cli", "bench", "rehearsal", "--quick", "--json"],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    conf = load_config(DEMO)
    small, large = result["runs"]
    assert (small["pairs"], large["pairs"]) == (20, 40)
    for run in (small, large):
        figures = {f["stage"]: f for f in run["stages"]}
        assert list(figures) == list(conf.pipeline)
        for stage in ("scenarios", "responses", "rubrics", "scores", "compliance"):
            assert figures[stage]["calls"] > 0 and figures[stage]["rows"] > 0, stage
        assert figures["disagreement"]["calls"] == 0 and figures["disagreement"]["rows"] > 0
        assert all(f["driver_peak_mb"] > 0 for f in figures.values())
        assert any(f["worker_peak_mb"] > 0 for f in figures.values())
        assert figures["responses"]["at_limits_s"] > 0
    assert large["stages"][0]["rows"] == 2 * small["stages"][0]["rows"] == 40  # the pairs
    assert set(result["growth"]) == set(conf.pipeline)
