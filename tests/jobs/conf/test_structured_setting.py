"""`stages.<stage>.structured` sticks to a run directory: a resume keeps the mode its calls were made with."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors.errors import ConfigError
from jobs.conf.schema import RunConf
from jobs.config import load_config
from jobs.context import keyed_record, resolve_keyed
from jobs.engine.rundir import Manifest, RunDir

DEMO = Path(__file__).resolve().parents[3] / "conf" / "demo.yaml"
STRUCTURED = ("rubrics", "scores", "topics", "refusals", "compliance", "values")


def setup(tmp_path: Path, *overrides: str, ran: dict[str, str | None]) -> tuple[RunConf, Manifest]:
    """A demo config and a manifest whose `ran` stages started before, with their recorded mode
    (None: recorded by a release without the setting)."""
    conf = load_config(DEMO, [f"run_dir={tmp_path / 'run'}", *overrides])
    manifest = Manifest(RunDir.open(conf.run_dir).root)
    for name, mode in ran.items():
        record = {"structured": mode} if mode else {}
        manifest.data["stages"][name] = {"state": "done", "started_at": "2026-12-01T00:00:00+00:00", **record}
    return conf, manifest


def mode(conf: RunConf, name: str) -> str | None:
    return getattr(conf.stages, name).structured


def test_a_new_run_sends_schemas(tmp_path: Path) -> None:
    conf, manifest = setup(tmp_path, ran={})
    assert resolve_keyed(conf, manifest) == {}
    assert all(mode(conf, s) == "auto" for s in STRUCTURED)
    assert keyed_record(conf, "rubrics") == {"structured": "auto"}
    assert keyed_record(conf, "responses") == {}  # a stage without the setting


def test_a_stage_run_before_the_setting_existed_resumes_without_schemas(tmp_path: Path) -> None:
    conf, manifest = setup(tmp_path, ran={"rubrics": None, "scores": "auto"})
    assert resolve_keyed(conf, manifest) == {}
    assert (mode(conf, "rubrics"), mode(conf, "scores"), mode(conf, "topics")) == ("off", "auto", "auto")


def test_an_explicit_setting_wins_and_is_reported_when_it_changes_the_keys(tmp_path: Path) -> None:
    conf, manifest = setup(
        tmp_path,
        "stages.rubrics.structured=auto",
        "stages.scores.structured=off",
        ran={"rubrics": None, "scores": "off"},
    )
    assert resolve_keyed(conf, manifest) == {
        ("rubrics", "structured"): "off"
    }  # scores keeps its own mode: no change
    assert (mode(conf, "rubrics"), mode(conf, "scores")) == ("auto", "off")


def test_an_unknown_mode_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"stages\.topics\.structured"):
        load_config(DEMO, [f"run_dir={tmp_path}", "stages.topics.structured=json"])


def test_cite_sections_sticks_to_the_run_directory_as_structured_does(tmp_path: Path) -> None:
    conf, manifest = setup(tmp_path, ran={})
    assert resolve_keyed(conf, manifest) == {}
    assert keyed_record(conf, "compliance") == {"structured": "auto", "cite_sections": True}
    # A compliance stage started by a release without the setting judged without citations.
    conf, manifest = setup(tmp_path, ran={"compliance": "off"})
    assert resolve_keyed(conf, manifest) == {}
    assert conf.stages.compliance.cite_sections is False
    conf, manifest = setup(tmp_path, "stages.compliance.cite_sections=true", ran={"compliance": "off"})
    assert resolve_keyed(conf, manifest) == {("compliance", "cite_sections"): False}
