"""A run directory written by release 0.1.0 resumes under the current code with zero calls.

Call keys, requests and each stage's choice of what to send must not drift between
releases: a user who upgrades mid-run would pay again for every call whose key changed.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pyarrow.dataset as pads
import pytest

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
    "stages.values.max_scenarios=3",
]


def stored_calls(run_dir: Path) -> int:
    return pads.dataset(run_dir / "cache" / "calls", format="parquet").count_rows()


def calls_made(summary: Any, where: str = "") -> dict[str, int]:
    """Every engine figure `made` in a stage summary (nested per requests table), by where it sits."""
    if not isinstance(summary, dict):
        return {}
    found = {where: summary["made"]} if isinstance(summary.get("made"), int) else {}
    for key, value in summary.items():
        found.update(calls_made(value, f"{where}.{key}"))
    return found


@pytest.mark.usefixtures("ray_local")
def test_a_release_0_1_0_run_resumes_with_zero_calls(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(FIXTURE, run_dir)
    before = stored_calls(run_dir)
    conf = load_config(DEMO, [f"run_dir={run_dir}", *OVERRIDES])
    summaries = run_pipeline(conf)
    assert list(summaries) == list(conf.pipeline)  # every stage ran, none was skipped
    figures = {name: calls_made(summary) for name, summary in summaries.items()}
    assert all(figures[s] for s in ("scenarios", "responses", "scores", "compliance"))  # the engine ran
    paid_again = {f"{name}{where}": n for name, found in figures.items() for where, n in found.items() if n}
    assert paid_again == {}, f"calls paid again under the current code: {paid_again}"
    assert stored_calls(run_dir) == before == 320
    assert summaries["responses"]["responses"] == 132
    assert summaries["compliance"]["judgements"] > 0
