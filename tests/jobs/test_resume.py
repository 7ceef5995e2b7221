"""SIGKILL the whole driver (and its local Ray) mid-stage, resume, and prove exactly-once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl

from actors.emulator.config import LatencyModel
from actors.emulator.server import EmulatorServer
from tests.conftest import emulator_config, run_conf_yaml

N_PAIRS = 240


def small_config(tmp_path: Path, url: str) -> Path:
    """pairs + scenarios over N_PAIRS pairs, three wire formats, shards landing steadily."""
    cfg = tmp_path / "conf.yaml"
    # Small batches and few requests in flight, so shards land steadily while the stage runs.
    text = run_conf_yaml(url, tmp_path / "run").replace("flush_rows: 50", "flush_rows: 4, batch_size: 4")
    text = text.replace("params: {max_tokens: 64}}", "params: {max_tokens: 64}, limits: {max_in_flight: 4}}")
    text += (
        "cache_dir: " + str(tmp_path / "cache") + "\n"
        "ray: {num_cpus: 2}\n"
        "pipeline: [pairs, scenarios]\n"
        f"stages: {{pairs: {{n_pairs: {N_PAIRS}}}, scenarios: {{generators: "
        "{m_openai: 1, m_anthropic: 1, m_gemini: 1}, max_tokens: 64, biased: false}}\n"
    )
    cfg.write_text(text)
    return cfg


def start_run(cfg: Path, *overrides: str) -> subprocess.Popen[bytes]:
    """`specstress run cfg overrides...` in its own process group, output captured."""
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    return subprocess.Popen(
        [sys.executable, "-m", "jobs.cli", "run", str(cfg), *overrides],
        env=env,
        start_new_session=True,  # its own process group: the kill takes Ray's processes too
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def kill_run(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the run's process group (Ray's processes too), reap it and close its output pipe."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)
    if proc.stdout is not None:
        proc.stdout.close()


def local_shards(tmp_path: Path) -> Callable[[], int]:
    """Counts the answers files of the clients' logs and the store's shards (each holds answers)."""
    return lambda: (
        len(list((tmp_path / "run" / "wal").glob("*.arrows")))
        + len(list((tmp_path / "cache" / "calls").glob("part-*.parquet")))
    )


def start_mid_stage(cfg: Path, shards: Callable[[], int], *overrides: str) -> subprocess.Popen[bytes]:
    """Start a run and return once `shards()` counts three files of answers, so a signal then lands mid-stage."""
    proc = start_run(cfg, *overrides)
    deadline = time.monotonic() + 180
    while shards() < 3:
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        assert time.monotonic() < deadline, "no shard within 180 s"
        time.sleep(0.05)
    return proc


def test_sigkill_mid_stage_then_resume_answers_every_request_once(tmp_path: Path, api_key: str) -> None:
    # ~60 ms a call and 64 in flight per account: the stage takes several seconds.
    with EmulatorServer(emulator_config(latency=LatencyModel(0.06, 0.0005), seed=5)) as emu:
        cfg = small_config(tmp_path, emu.url)
        proc = start_mid_stage(cfg, local_shards(tmp_path))
        kill_run(proc)
        answered_at_kill = sum(emu.stats()["ok_by_hash"].values())
        assert 0 < answered_at_kill < N_PAIRS, "the kill must land mid-stage"

        resumed = start_run(cfg)
        out, _ = resumed.communicate(timeout=240)
        assert resumed.returncode == 0, out.decode()[-3000:]
        stats = emu.stats()

    answers = stats["ok_by_hash"]
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    in_flight = sum(item["may_be_paid_twice"] for item in manifest.get("interrupted", []))
    assert {item["stage"] for item in manifest.get("interrupted", [])} <= {"scenarios_neutral"}
    repeated = sum(n - 1 for n in answers.values() if n > 1)
    # Every request answered; only calls in flight at the kill may have been answered twice,
    # and the run reports how many those were.
    assert len(answers) == N_PAIRS
    assert repeated <= in_flight
    assert manifest["stages"]["scenarios"]["state"] == "done"
    # Exactly one row per pair in the stage's output: kept scenarios plus rejects.
    tables = tmp_path / "run" / "tables"
    kept = pl.read_parquet(tables / "scenarios.parquet")
    rejected = pl.read_parquet(tables / "scenario_rejects.parquet")
    ids = pl.concat([kept["pair_id"], rejected["pair_id"]])
    assert ids.len() == N_PAIRS and ids.n_unique() == N_PAIRS
    # `specstress status` reads the same picture from the manifest.
    from jobs.outputs.status import format_status, run_status

    status = run_status(str(tmp_path / "run"))
    assert status["store"]["ok"] >= N_PAIRS  # answers logged after the kill were kept, not paid again
    assert status["calls"]["scenarios_neutral"]["requests"] == N_PAIRS
    assert (in_flight > 0) == ("may have been paid twice" in format_status(status))
    assert status["on_the_wire"] == []  # every log settled
