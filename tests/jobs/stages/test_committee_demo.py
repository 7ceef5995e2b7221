"""The demo in committee mode, as `scripts/demo conf/demo-committee.yaml` runs it (the stages up to
disagreement): `specstress run` prints the recall with its interval and the cost share, and the
offline planner reads the finished run. A few minutes on two cores, hence slow."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
CONF = REPO / "conf" / "demo-committee.yaml"
PIPELINE = "pipeline=[pairs,scenarios,embeddings,diversity,rubrics,responses,scores,disagreement]"

pytestmark = pytest.mark.slow


def specstress(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jobs.cli", *args], cwd=REPO, capture_output=True, text=True, timeout=900
    )


def test_the_committee_demo_prints_recall_and_cost_share(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    done = specstress("run", str(CONF), f"run_dir={run_dir}", "emulator.port=8797", PIPELINE)
    assert done.returncode == 0, done.stderr[-3000:]
    line = re.search(
        r"recall (\d+)% \(95% interval (\d+)%-(\d+)%\) of the (\d+) high-disagreement calibration",
        done.stdout,
    )
    assert line, done.stdout[-3000:]
    recall, low, high, n_high = map(int, line.groups())
    assert low <= recall <= high and n_high > 0
    share = re.search(r"went to every model; responses cost \$[\d.,]+, (\d+)% of a full sweep", done.stdout)
    assert share and 0 < int(share.group(1)) <= 100, done.stdout[-3000:]

    planned = specstress(
        "committee", str(run_dir), "--models", "claude_3_5_sonnet,gpt_4_1_mini,gemini_2_5_pro", "--json"
    )
    assert planned.returncode == 0, planned.stderr[-3000:]
    report = json.loads(planned.stdout)
    assert report["high"] == n_high  # the planner reads the same calibration sample
    [plan] = report["plans"]
    assert plan["curve"] and all(0 <= p["cost_share"] <= 1 for p in plan["curve"])
