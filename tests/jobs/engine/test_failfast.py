"""Fail fast on systematic failures, and the accounting of calls that all failed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from actors.emulator.server import EmulatorServer
from actors.errors import CallsFailed, SystematicFailure
from actors.types import Endpoint
from jobs.config import load_config
from jobs.driver import run_pipeline
from jobs.engine.failfast import MESSAGE_CHARS, FailFast
from jobs.outputs.status import format_status, run_status
from tests.conftest import run_conf_yaml
from tests.jobs.engine.test_accounting import rows
from tests.jobs.engine.test_engine import make_engine, requests

ABSENT = "SPECSTRESS_ABSENT_KEY"
"""A key variable no test sets: every call of its model fails with `auth` before it is sent."""

ENDPOINTS = {
    m: Endpoint(
        model_key=m,
        provider="openai",
        model_id=f"{m}-id",
        base_url=f"https://{m}.example/v1",
        api_key_env=f"{m.upper()}_KEY",
        account=m,
    )
    for m in ("a", "b")
}


def test_bad_requests_among_answers_and_transient_failures_never_trip() -> None:
    rule = FailFast("s", 3, ENDPOINTS)
    rule.add(rows("a", ["client", "client", "ok"]))
    rule.add(rows("a", ["client"] * 50))  # after an answer: single bad requests, not the model
    rule.add(rows("b", ["server", "timeout", "rate_limit"] * 10 + ["client", "auth"]))
    assert rule.tripped is None
    rule.check()


def test_a_model_that_never_answers_trips_and_is_named_without_its_key() -> None:
    rule = FailFast("gen", 3, ENDPOINTS)
    rule.add(rows("a", ["ok"]))
    rule.add(rows("b", ["auth", "server", "auth"], error="x" * 1000))
    assert rule.tripped is None
    rule.add(rows("b", ["auth"], error="x" * 1000))
    assert rule.tripped == "b"
    with pytest.raises(SystematicFailure) as err:
        rule.check()
    text = str(err.value)
    for part in (
        "stage 'gen'",
        "model 'b'",
        "'auth'",
        "B_KEY",
        "https://b.example/v1",
        "b-id",
        "same command",
    ):
        assert part in text
    stored = "auth: model b: " + "x" * 1000  # cut in the message, kept whole in the store
    assert stored[:MESSAGE_CHARS] + "..." in text and stored[: MESSAGE_CHARS + 1] not in text


def test_an_account_out_of_credit_trips_like_a_wrong_key() -> None:
    rule = FailFast("s", 2, ENDPOINTS)
    rule.add(rows("a", ["rate_limit", "quota"]))
    assert rule.tripped is None
    rule.add(rows("a", ["quota"]))
    assert rule.tripped == "a"
    with pytest.raises(SystematicFailure, match=r"failed 2 calls with 'quota'.*the account's credit"):
        rule.check()


@pytest.mark.parametrize("after", [0, None])
def test_zero_or_null_never_trips(after: int | None) -> None:
    rule = FailFast("s", after, ENDPOINTS)
    rule.add(rows("a", ["auth"] * 100))
    assert rule.tripped is None


@pytest.mark.usefixtures("ray_local")
def test_a_model_without_its_key_stops_the_stage_and_keeps_the_answers(
    tmp_path: Path, emulator: EmulatorServer, api_key: str
) -> None:
    engine = make_engine(
        tmp_path,
        emulator.url,
        f"models.m_anthropic.api_key_env={ABSENT}",
        "engine.fail_fast_after=5",
        "engine.batch_size=2",
        "engine.window_per_model=4",
        models=("m_openai", "m_anthropic"),
    )
    path = engine.write_requests("s", requests(["m_openai", "m_anthropic"], 200))
    with pytest.raises(SystematicFailure) as err:
        engine.run("s", path)
    engine.close()
    text = str(err.value)
    assert "model 'm_anthropic'" in text and ABSENT in text and emulator.url in text
    assert api_key not in text
    calls = engine.manifest.data["calls"]["s"]
    res = engine.results(path, ["status", "model", "attempts"]).collect()
    stored = res.filter(pl.col("status").is_not_null())
    bad = stored.filter(pl.col("model") == "m_anthropic")
    assert 5 <= bad.height < 100, "the stage must stop after the threshold"
    assert (bad["status"] == "failed").all() and calls["retries"] >= 0
    assert calls["made"] == stored.height < 200
    # Answers that arrived are stored and counted; the emulator saw only the keyed model's calls.
    assert calls["ok"] == stored.filter(pl.col("status") == "ok").height == emulator.stats()["total"]
    assert api_key not in json.dumps(engine.manifest.data)


@pytest.mark.usefixtures("ray_local")
def test_a_stage_whose_calls_all_failed_is_not_done(tmp_path: Path, emulator: EmulatorServer) -> None:
    engine = make_engine(
        tmp_path, emulator.url, f"models.m_openai.api_key_env={ABSENT}", models=("m_openai",)
    )
    path = engine.write_requests("s", requests(["m_openai"], 8))
    with pytest.raises(CallsFailed, match="all 8 calls failed") as err:
        engine.run("s", path)
    engine.close()
    assert not isinstance(err.value, SystematicFailure)  # 8 stay under the default threshold
    calls = engine.manifest.data["calls"]["s"]
    assert (calls["made"], calls["failed"], calls["retries"], calls["failures"]) == (8, 8, 0, {"auth": 8})


def scenario_conf(tmp_path: Path, url: str, *overrides: str) -> Any:
    cfg = tmp_path / "conf.yaml"
    text = run_conf_yaml(url, tmp_path / "run", models=("m_openai", "m_anthropic"))
    text = text.replace("flush_rows: 50", "flush_rows: 50, batch_size: 2, window_per_model: 4")
    text += (
        f"cache_dir: {tmp_path / 'cache'}\n"
        "pipeline: [pairs, scenarios]\n"
        "stages: {pairs: {n_pairs: 40}, scenarios: {generators: {m_openai: 1, m_anthropic: 1}, "
        "max_tokens: 64, biased: false}}\n"
    )
    cfg.write_text(text)
    return load_config(cfg, list(overrides))


@pytest.mark.usefixtures("ray_local")
def test_the_run_fails_resumably_and_the_resume_makes_only_the_missing_calls(
    tmp_path: Path, emulator: EmulatorServer
) -> None:
    broken = scenario_conf(
        tmp_path, emulator.url, f"models.m_anthropic.api_key_env={ABSENT}", "engine.fail_fast_after=3"
    )
    with pytest.raises(SystematicFailure):
        run_pipeline(broken)
    manifest = json.loads((Path(broken.run_dir) / "manifest.json").read_text())
    assert (manifest["state"], manifest["resumable"]) == ("failed", True)
    assert manifest["stages"]["scenarios"]["state"] == "failed"
    assert "SystematicFailure" in manifest["stages"]["scenarios"]["error"]
    status = format_status(run_status(broken.run_dir))
    assert ": failed\n  resumable: run the same command" in status and "m_anthropic" in status
    assert "retries=0 " in status
    answered = sum(emulator.stats()["ok_by_hash"].values())
    # The key fixed (here: the model pointed back at the variable that holds it), the same run resumes.
    summary = run_pipeline(scenario_conf(tmp_path, emulator.url))["scenarios"]
    stats = emulator.stats()
    assert all(n == 1 for n in stats["ok_by_hash"].values()), "a finished call was made again"
    neutral = summary["calls"]["neutral"]
    assert neutral["cached"] == answered and neutral["made"] == neutral["requests"] - answered
    assert stats["total"] == neutral["requests"]
    manifest = json.loads((Path(broken.run_dir) / "manifest.json").read_text())
    assert (manifest["state"], manifest["resumable"]) == ("done", False)
