"""Changing `stages.rubrics.structured` on a run directory: said out loud, then sticky.

Release 0.1.0's run directory made its rubric calls without a schema. Resumed with the key
unset it keeps `off` and pays nothing; set to `auto` it warns how many stored answers the
change leaves unused and asks again, with the schema; resumed once more with the key unset,
it keeps `auto`, the mode it last ran with, and pays nothing.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest

from jobs.config import load_config
from jobs.driver import run_pipeline
from jobs.estimate.estimate import estimate
from tests.release_run import DEMO, FIXTURE, OVERRIDES

STAGES = ["pairs", "scenarios", "embeddings", "diversity", "rubrics"]


def rubrics(run_dir: Path, caplog: pytest.LogCaptureFixture, *extra: str) -> tuple[dict[str, Any], str, str]:
    """Run the stages up to rubrics; the rubrics summary, the mode recorded, and what was logged."""
    caplog.clear()
    conf = load_config(DEMO, [f"run_dir={run_dir}", *OVERRIDES, *extra])
    with caplog.at_level(logging.WARNING, logger="specstress"):
        summary = run_pipeline(conf, stages=STAGES)["rubrics"]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    return summary, manifest["stages"]["rubrics"]["structured"], caplog.text


def test_a_changed_setting_is_reported_then_kept(
    ray_local: None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(FIXTURE, run_dir)

    summary, mode, logged = rubrics(run_dir, caplog)
    pairs = summary["pairs"]
    assert (summary["calls"]["made"], mode, logged) == (0, "off", "")

    conf = load_config(DEMO, [f"run_dir={run_dir}", *OVERRIDES, "stages.rubrics.structured=auto"])
    changes = estimate(conf).as_dict()["keyed_changes"]
    assert changes == {"rubrics.structured": {"made_with": "off", "set": "auto", "stored_not_reused": pairs}}

    summary, mode, logged = rubrics(run_dir, caplog, "stages.rubrics.structured=auto")
    assert f"{pairs} stored first-round answers are not reused" in logged and mode == "auto"
    assert summary["calls"]["made"] >= pairs and summary["ok"] == pairs
    assert "structured_fallback" not in summary

    summary, mode, logged = rubrics(run_dir, caplog)
    assert (summary["calls"]["made"], mode, logged) == (0, "auto", "")
