"""SIGINT to the driver: a graceful drain, a resumable manifest, exit 130, and an exactly-once resume."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from actors.emulator.config import FaultRates, LatencyModel
from actors.emulator.server import EmulatorServer
from actors.errors import Interrupted
from actors.store import CallStore
from jobs import cli
from jobs.cli import EXIT_INTERRUPTED
from jobs.engine.drain import on_signals, raise_interrupted
from jobs.outputs.status import format_status, run_status
from tests.conftest import emulator_config
from tests.jobs.engine.test_engine import make_engine, requests
from tests.jobs.test_resume import N_PAIRS, local_shards, small_config, start_mid_stage, start_run


def test_sigint_drains_in_flight_calls_and_the_resume_pays_for_nothing_twice(
    tmp_path: Path, api_key: str
) -> None:
    with EmulatorServer(emulator_config(latency=LatencyModel(0.06, 0.0005), seed=11)) as emu:
        cfg = small_config(tmp_path, emu.url)
        proc = start_mid_stage(cfg, local_shards(tmp_path), "engine.drain_timeout_s=60")
        # Ctrl-C on a terminal signals the whole foreground process group.
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
        log = out.decode()
        assert proc.returncode == EXIT_INTERRUPTED == 130, log[-3000:]
        answered_at_stop = emu.stats()["ok_by_hash"]
        assert 0 < len(answered_at_stop) < N_PAIRS, "the signal must land mid-stage"

        manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
        assert manifest["state"] == "interrupted" and manifest["resumable"] is True
        assert manifest["stages"]["scenarios"]["state"] == "interrupted"
        text = format_status(run_status(str(tmp_path / "run")))
        assert ": interrupted\n  resumable: run the same command again" in text
        # Drained, not dropped: every answer the provider gave before the stop is in the store.
        stored = CallStore(str(tmp_path / "cache")).done_keys().collect().height
        assert stored == len(answered_at_stop)
        assert "run the same command to resume" in log
        assert list((tmp_path / "run" / "wal").iterdir()) == []  # the session's log was settled

        resumed = start_run(cfg)
        out, _ = resumed.communicate(timeout=240)
        assert resumed.returncode == 0, out.decode()[-3000:]
        answers = emu.stats()["ok_by_hash"]

    assert len(answers) == N_PAIRS
    assert all(n == 1 for n in answers.values()), "a drained stop repeats nothing"
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["state"] == "done" and manifest["resumable"] is False
    assert "interrupted" not in manifest  # no calls were cut off in flight


@pytest.mark.usefixtures("ray_local")
@pytest.mark.parametrize(
    ("drain_timeout_s", "signals"),
    [(0.5, 1), (60.0, 2)],  # the drain's deadline passes, or a second Ctrl-C cuts off at once
)
def test_drain_abandons_hung_calls_and_the_resume_counts_them(
    tmp_path: Path, drain_timeout_s: float, signals: int
) -> None:
    n = 60
    faults = FaultRates(hang=0.3)
    with EmulatorServer(emulator_config(faults=faults, hang_s=30.0, seed=4)) as emu:
        engine = make_engine(
            tmp_path,
            emu.url,
            f"engine.drain_timeout_s={drain_timeout_s}",
            "models.m_openai.timeout_s=20",
            models=("m_openai",),
        )
        path = engine.write_requests("s", requests(["m_openai"], n))

        def interrupt_when_half_answered() -> None:
            while sum(emu.stats()["ok_by_hash"].values()) < n // 2:
                time.sleep(0.05)
            for _ in range(signals):
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.5)

        threading.Thread(target=interrupt_when_half_answered, daemon=True).start()
        started = time.monotonic()
        with pytest.raises(Interrupted) as stopped:
            engine.run("s", path)
        assert time.monotonic() - started < 20  # cut off, not waiting out the hung calls
        engine.close()
        abandoned = stopped.value.abandoned
        assert stopped.value.signum == signal.SIGINT and abandoned > 0  # the hung calls
        # The cut-off calls were sent and never answered: the settled log counts each one.
        counted = [(e["stage"], e["may_be_paid_twice"]) for e in engine.manifest.data["interrupted"]]
        assert counted == [("s", abandoned)]
        assert list((tmp_path / "run" / "wal").iterdir()) == []
        answered = emu.stats()["ok_by_hash"]
        assert engine.store.done_keys().collect().height == len(answered)  # what finished was stored

        resumed = make_engine(tmp_path, emu.url, "models.m_openai.timeout_s=1", models=("m_openai",))
        calls = resumed.run("s", path)
        results = resumed.results(path, ["status"]).collect()
        resumed.close()
        answers = emu.stats()["ok_by_hash"]
    assert calls.made == abandoned  # the resume sends exactly those again
    assert results.height == n and (results["status"] == "ok").all()
    assert len(answers) == n and all(k == 1 for k in answers.values())


def test_signals_outside_the_engine_stop_with_128_plus_the_signal(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(Interrupted) as stopped, on_signals(raise_interrupted):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises before this ends
    assert stopped.value.signum == signal.SIGTERM
    monkeypatch.setattr(cli, "_cmd_run", lambda args: (_ for _ in ()).throw(Interrupted(signal.SIGTERM)))
    assert cli.main(["run", "conf/demo.yaml"]) == 143
