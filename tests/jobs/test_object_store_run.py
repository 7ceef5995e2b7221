"""A whole `specstress run` with its run directory and call store on S3 (moto on loopback).

Object stores have no rename: shards and tables are uniquely named objects written whole,
the journal is written a window ahead, and every read goes through pyarrow's S3 filesystem.
The run is SIGKILLed mid-stage and resumed there, and the emulator proves exactly-once.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from actors.emulator.config import LatencyModel
from actors.emulator.server import EmulatorServer
from actors.storage import Location
from jobs.outputs.status import run_status
from tests.conftest import emulator_config
from tests.jobs.test_resume import N_PAIRS, kill_run, small_config, start_mid_stage, start_run
from tests.s3server import s3_bucket

pytestmark = pytest.mark.slow


def _objects(uri: str, suffix: str) -> list[str]:
    return Location(uri).list_files(suffix)


def test_run_on_s3_killed_and_resumed_answers_every_request_once(tmp_path: Path, api_key: str) -> None:
    with (
        s3_bucket() as bucket,
        EmulatorServer(emulator_config(latency=LatencyModel(0.06, 0.0005), seed=9)) as emu,
    ):
        run_uri, cache_uri = f"{bucket}/runs/r1", f"{bucket}/cache"
        cfg = small_config(tmp_path, emu.url)
        overrides = (f"run_dir={run_uri}", f"cache_dir={cache_uri}")
        proc = start_mid_stage(cfg, lambda: len(_objects(f"{run_uri}/wal", ".arrows")), *overrides)
        kill_run(proc)
        answered_at_kill = sum(emu.stats()["ok_by_hash"].values())
        assert 0 < answered_at_kill < N_PAIRS, "the kill must land mid-stage"
        assert _objects(f"{run_uri}/wal", ".events"), "the killed session's log is on S3"

        resumed = start_run(cfg, *overrides)
        out, _ = resumed.communicate(timeout=300)
        assert resumed.returncode == 0, out.decode()[-3000:]
        answers = emu.stats()["ok_by_hash"]

        status = run_status(run_uri)
        assert status["state"] == "done" and status["stages"]["scenarios"]["state"] == "done"
        in_flight = sum(item["may_be_paid_twice"] for item in status.get("interrupted", []))
        assert len(answers) == N_PAIRS
        assert sum(n - 1 for n in answers.values() if n > 1) <= in_flight
        assert _objects(f"{run_uri}/wal", "") == []  # a clean end leaves no log
        fs, root = pafs.FileSystem.from_uri(run_uri)
        with fs.open_input_stream(f"{root}/manifest.json") as src:
            assert json.loads(src.read())["run_id"] == status["run_id"]
        tables = {p.rsplit("/", 1)[-1] for p in _objects(f"{run_uri}/tables", ".parquet")}
        assert {"pairs.parquet", "scenarios.parquet", "scenario_rejects.parquet"} <= tables
        assert not (tmp_path / "run").exists() and not Path("s3:").exists()  # nothing leaked to local paths
