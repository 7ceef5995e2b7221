"""The run directory release 0.1.0 wrote (tests/fixtures/release_0_1_0_run), resumed under the current code.

One resume serves several tests: it must make no call (`tests/test_release_resume.py`), and
afterwards its requests tables are what the current stages send (`tests/jobs/stages/test_plans.py`).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.dataset as pads

from jobs.conf.schema import RunConf
from jobs.config import load_config
from jobs.driver import run_pipeline

FIXTURE = Path(__file__).parent / "fixtures" / "release_0_1_0_run"
DEMO = Path(__file__).resolve().parents[1] / "conf" / "demo.yaml"
OVERRIDES = [
    "emulator.port=8797",
    "stages.pairs.n_pairs=4",
    "stages.topics.max_scenarios=4",
    "stages.refusals.max_scenarios=3",
    "stages.compliance.samples={random: 2, high_all: 2, high_family: 2}",
    "stages.compliance.per_bin=0",  # release 0.1.0 drew no bins: the same scenarios, no new calls
    # Release 0.1.0 judged one spec (spec: null, the demo spec) and one family (the OpenAI
    # models); the demo now judges two versions and two families, which would be new calls.
    "stages.compliance.specs=null",
    "stages.compliance.families=null",
    "stages.compliance.family_specs=null",
    "stages.values.max_scenarios=3",
]


def stored_calls(run_dir: Path) -> int:
    return pads.dataset(run_dir / "cache" / "calls", format="parquet").count_rows()


@dataclass(frozen=True)
class ResumedRun:
    conf: RunConf
    run_dir: Path
    stored_before: int
    summaries: dict[str, dict[str, Any]]


def resume_release_run(tmp: Path) -> ResumedRun:
    """Copy the fixture to `tmp/run` and run the demo pipeline on it."""
    run_dir = tmp / "run"
    shutil.copytree(FIXTURE, run_dir)
    before = stored_calls(run_dir)
    conf = load_config(DEMO, [f"run_dir={run_dir}", *OVERRIDES])
    return ResumedRun(conf, run_dir, before, run_pipeline(conf))
