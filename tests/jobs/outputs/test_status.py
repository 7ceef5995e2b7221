"""`specstress status --json` while a run goes on and after it is killed, checked against the call store."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import polars as pl

from actors.emulator.config import LatencyModel
from actors.emulator.server import EmulatorServer
from actors.store import CallStore
from jobs.engine.rundir import Manifest, RunDir
from jobs.outputs.status import format_status, run_status
from tests.conftest import emulator_config
from tests.jobs.engine.test_recovery import write_log
from tests.jobs.test_resume import kill_run, small_config, start_run


def status_json(run: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "jobs.cli", "status", str(run), "--json"],
        capture_output=True,
        check=True,
        timeout=120,
    )
    return json.loads(out.stdout)


def store_truth(cache: Path, run_id: str) -> dict[str, Any]:
    lf = CallStore(str(cache)).scan(["run_id", "status", "cost_usd"]).filter(pl.col("run_id") == run_id)
    row = lf.select(
        pl.len().alias("calls"), (pl.col("status") == "ok").sum().alias("ok"), pl.col("cost_usd").sum()
    ).collect()
    return row.row(0, named=True)


def test_status_during_a_run_and_after_a_kill_matches_the_store(tmp_path: Path, api_key: str) -> None:
    run, cache = tmp_path / "run", tmp_path / "cache"
    # 0.8 s a call, 4 in flight per model: the stage takes about 16 s, longer than the checks below.
    with EmulatorServer(emulator_config(latency=LatencyModel(0.8, 0.0), seed=6)) as emu:
        proc = start_run(small_config(tmp_path, emu.url))
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and len(list((cache / "calls").glob("part-*.parquet"))) < 3:
                assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
                time.sleep(0.05)
            run_id = json.loads((run / "manifest.json").read_text())["run_id"]
            before = store_truth(cache, run_id)["calls"]
            live = status_json(run)
            after = store_truth(cache, run_id)["calls"]
            assert proc.poll() is None, "the run must still be going for the live check"
        finally:
            kill_run(proc)

    assert live["run_state"] == "running"
    assert live["stages"]["scenarios"]["state"] == "running"
    assert before <= live["store"]["calls"] <= after
    neutral = live["calls"]["scenarios_neutral"]
    # The manifest is rewritten after each shard lands, so it never counts more than the store holds.
    assert 0 < neutral["made"] <= live["store"]["calls"]
    eta = live["eta"]["scenarios_neutral"]
    assert eta["calls_left"] == neutral["requests"] - neutral["cached"] - neutral["made"] > 0
    assert eta["eta_s"] > 0 and eta["rate_per_s"] > 0

    dead = status_json(run)
    truth = store_truth(cache, run_id)
    assert dead["run_state"] == "killed"
    assert dead["eta"] == {}
    assert dead["store"]["calls"] == truth["calls"] and dead["store"]["ok"] == truth["ok"]
    assert abs(dead["store"]["cost_usd"] - truth["cost_usd"]) < 1e-9
    assert dead["calls"]["scenarios_neutral"]["made"] <= truth["calls"]
    assert dead["tables"].get("pairs") == 240


def test_status_shows_calls_on_the_wire_per_the_logs_and_those_a_settled_session_counted(
    tmp_path: Path,
) -> None:
    run = RunDir.open(str(tmp_path / "run"))
    manifest = Manifest(run.root)
    manifest.data["sessions"].append({"started_at": "2026-12-06T00:00:00+00:00", "ended_at": "x"})
    manifest.data["interrupted"] = [
        {"session": "old", "stage": "scores", "model": "judge", "may_be_paid_twice": 3},
        {"session": "older", "stage": "scores", "model": "judge", "may_be_paid_twice": 2},
    ]
    manifest.save()
    write_log(tmp_path / "run" / "wal", "live", "c1", "responses", ["a", "b", "c"], ["a"])

    status = run_status(str(tmp_path / "run"))
    assert status["paid_twice"] == [{"stage": "scores", "model": "judge", "calls": 5}]
    assert status["on_the_wire"] == [{"stage": "responses", "model": "m", "calls": 2}]
    text = format_status(status)
    assert "may have been paid twice: 5 calls of scores/judge" in text
    assert "on the wire per the clients' logs: 2 calls of responses/m" in text
