"""SIGKILL the driver while its batches are open, resume, and prove nothing was submitted twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from actors.emulator.config import BatchBehaviour
from actors.emulator.server import EmulatorServer
from jobs.outputs.status import run_status
from tests.conftest import emulator_config, run_conf_yaml
from tests.jobs.test_resume import kill_run

N_PAIRS = 30


def _config(tmp_path: Path, url: str) -> Path:
    cfg = tmp_path / "conf.yaml"
    cfg.write_text(
        run_conf_yaml(url, tmp_path / "run") + "ray: {num_cpus: 2}\n"
        "pipeline: [pairs, scenarios]\n"
        "batch: {poll_s: 0.3}\n"
        f"stages: {{pairs: {{n_pairs: {N_PAIRS}}}, scenarios: {{generators: "
        "{m_openai: 1, m_anthropic: 1, m_gemini: 1}, max_tokens: 64, biased: false, route: batch}}\n"
    )
    return cfg


def _run(cfg: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "jobs.cli", "run", str(cfg)],
        env={**os.environ, "RAY_AUTH_MODE": "disabled"},
        start_new_session=True,  # its own process group: the kill takes Ray's processes too
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _submitted(batches: Path) -> int:
    states = [json.loads(p.read_text())["state"] for p in batches.glob("*.json")]
    return sum(s == "submitted" for s in states)


def test_kill_with_batches_in_flight_then_resume_submits_nothing_twice(tmp_path: Path, api_key: str) -> None:
    with EmulatorServer(emulator_config(batch=BatchBehaviour(delay_s=6.0), seed=2)) as emu:
        cfg = _config(tmp_path, emu.url)
        proc = _run(cfg)
        batches = tmp_path / "run" / "batches"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and _submitted(batches) < 3:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            time.sleep(0.05)
        kill_run(proc)
        at_kill = emu.stats()
        in_flight = run_status(str(tmp_path / "run"))["batches"]["in_flight"]

        resumed = _run(cfg)
        out, _ = resumed.communicate(timeout=240)
        assert resumed.returncode == 0, out.decode()[-3000:]
        stats = emu.stats()

    assert at_kill["batches"] == 3 and sum(at_kill["ok_by_hash"].values()) < N_PAIRS  # killed mid-batch
    assert len(in_flight) == 3 and sum(b["items"] for b in in_flight) == N_PAIRS
    assert all(b["state"] == "submitted" and b["age_s"] >= 0 for b in in_flight)
    # The resumed run polled and collected the live batches: no new batch, no online call.
    assert stats["batches"] == 3
    assert set(stats["batch_by_hash"].values()) == {1} and len(stats["batch_by_hash"]) == N_PAIRS
    assert stats["by_hash"] == {}
    assert set(stats["ok_by_hash"].values()) == {1} and len(stats["ok_by_hash"]) == N_PAIRS
    status = run_status(str(tmp_path / "run"))
    assert status["stages"]["scenarios"]["state"] == "done"
    assert status["batches"]["in_flight"] == []
    assert status["batches"]["totals"]["collected_batches"] == 3
