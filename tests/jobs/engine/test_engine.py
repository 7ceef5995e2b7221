"""The fan-out engine against the emulator: caching, faults, budgets, sweeps, secrets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest

from actors.emulator.config import FaultRates
from actors.emulator.server import EmulatorServer
from actors.errors import BudgetExceeded, CallsFailed
from actors.store import CallStore
from actors.types import chat, spec_to_json
from jobs.config import load_config
from jobs.engine.engine import Engine
from jobs.engine.rundir import Manifest, RunDir
from tests.conftest import emulator_config, run_conf_yaml

pytestmark = pytest.mark.usefixtures("ray_local")


def make_engine(tmp_path: Path, url: str, *overrides: str, models: tuple[str, ...] | None = None) -> Engine:
    cfg = tmp_path / "conf.yaml"
    kwargs = {"models": models} if models else {}
    cfg.write_text(run_conf_yaml(url, tmp_path / "run", **kwargs))
    conf = load_config(cfg, list(overrides))
    run = RunDir.open(conf.run_dir)
    return Engine(conf, run, Manifest(run.root), CallStore(str(tmp_path / "cache")))


def requests(models: list[str], n: int, tag: str = "q") -> list[pl.DataFrame]:
    rows = [
        (models[i % len(models)], f"{tag} {i}: should I tell my friend the truth about the gift?")
        for i in range(n)
    ]
    return [
        pl.DataFrame(
            {
                "model": [m for m, _ in rows],
                "spec": [spec_to_json(chat(m, p, max_tokens=64)) for m, p in rows],
                "row_id": list(range(n)),
            }
        )
    ]


def ok_answers(stats: dict[str, Any]) -> dict[str, int]:
    return stats["ok_by_hash"]


def test_rerun_makes_zero_calls_and_results_keep_every_row(tmp_path: Path, emulator: EmulatorServer) -> None:
    engine = make_engine(tmp_path, emulator.url)
    path = engine.write_requests("s", requests(["m_openai", "m_anthropic", "m_gemini"], 90))
    first = engine.run("s", path)
    assert (first.requests, first.made, first.ok, first.cached) == (90, 90, 90, 0)
    sent = emulator.stats()["total"]
    assert sent == 90
    again = engine.run("s", path)
    assert (again.made, again.cached) == (0, 90)
    assert engine.manifest.data["calls"]["s"]["cached"] == 90  # status sees fully cached runs too
    assert emulator.stats()["total"] == sent
    res = engine.results(path, ["status", "text", "refusal", "input_tokens", "cost_usd"]).collect()
    assert res.height == 90 and res["row_id"].sort().to_list() == list(range(90))
    assert (res["status"] == "ok").all()
    assert ((res["text"].str.len_chars() > 0) | res["refusal"]).all()
    assert (res["cost_usd"] > 0).all()
    engine.close()


def test_faults_are_retried_or_recorded_never_lost(tmp_path: Path, api_key: str) -> None:
    faults = FaultRates(server_500=0.2, overloaded_529=0.1, reset=0.1, malformed_json=0.1, truncated_body=0.1)
    with EmulatorServer(emulator_config(faults=faults, seed=3)) as emu:
        engine = make_engine(tmp_path, emu.url, "engine.max_attempts=2")
        path = engine.write_requests("s", requests(["m_openai", "m_anthropic", "m_gemini"], 120))
        calls = engine.run("s", path)
        res = engine.results(path, ["status", "error_kind", "attempts", "raw"]).collect()
        engine.close()
    assert res.height == 120 and res["key"].n_unique() == 120
    assert calls.ok + calls.failed == 120 and calls.failed > 0 and calls.retries > 0
    failed = res.filter(pl.col("status") == "failed")
    assert failed.height == calls.failed
    assert set(failed["error_kind"]) <= {"server", "overloaded", "connection", "malformed"}
    assert (failed["attempts"] == 2).all()
    # A malformed body that was answered is kept raw for inspection.
    assert failed.filter(pl.col("error_kind") == "malformed")["raw"].is_not_null().all()


def test_failed_rows_are_retried_on_the_next_run(tmp_path: Path, api_key: str) -> None:
    faults = FaultRates(server_500=0.5)
    with EmulatorServer(emulator_config(faults=faults, seed=1)) as emu:
        engine = make_engine(tmp_path, emu.url, "engine.max_attempts=1")
        path = engine.write_requests("s", requests(["m_openai"], 40))
        first = engine.run("s", path)
        assert first.failed > 0
        second = engine.run("s", path)
        assert second.made == first.failed
        res = engine.results(path, ["status"]).collect()
        engine.close()
    assert res.height == 40
    assert res.filter(pl.col("status") == "ok").height == first.ok + second.ok


def test_adding_a_model_makes_only_its_calls(tmp_path: Path, emulator: EmulatorServer) -> None:
    engine = make_engine(tmp_path, emulator.url, models=("m_openai", "m_anthropic", "m_gemini", "m_xai"))
    base = engine.write_requests("base", requests(["m_openai", "m_anthropic"], 40))
    engine.run("base", base)
    before = dict(ok_answers(emulator.stats()))
    grown = engine.write_requests("grown", requests(["m_openai", "m_anthropic", "m_gemini", "m_xai"], 80))
    calls = engine.run("grown", grown)
    after = ok_answers(emulator.stats())
    engine.close()
    assert all(after[h] == 1 for h in after), "a request was answered twice"
    assert len(set(after) - set(before)) == calls.made
    # The grown table repeats the base prompts only where the model matches: those are cached.
    grown_keys = set(pl.read_parquet(grown)["key"])
    base_keys = set(pl.read_parquet(base)["key"])
    assert calls.made == len(grown_keys - base_keys) and calls.cached == len(grown_keys & base_keys)


def test_missing_key_fails_fast_and_names_the_variable(tmp_path: Path, emulator: EmulatorServer) -> None:
    engine = make_engine(tmp_path, emulator.url, "models.m_openai.api_key_env=SPECSTRESS_UNSET_KEY")
    path = engine.write_requests("s", requests(["m_openai"], 5))
    with pytest.raises(CallsFailed, match="all 5 calls failed"):  # a stage of failures is not done
        engine.run("s", path)
    res = engine.results(path, ["status", "error_kind", "error", "attempts"]).collect()
    engine.close()
    assert engine.manifest.data["calls"]["s"]["failed"] == 5 and emulator.stats()["total"] == 0
    assert (res["error_kind"] == "auth").all() and (res["attempts"] == 0).all()
    assert res["error"].str.contains("SPECSTRESS_UNSET_KEY").all()


def test_budget_refuses_before_spending(tmp_path: Path, emulator: EmulatorServer) -> None:
    engine = make_engine(tmp_path, emulator.url, "budget_usd=0.0001")
    path = engine.write_requests("s", requests(["m_openai"], 50))
    with pytest.raises(BudgetExceeded, match="nothing was sent"):
        engine.run("s", path)
    engine.close()
    assert emulator.stats()["total"] == 0


def test_budget_stops_cleanly_mid_stage_and_resumes(
    tmp_path: Path, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Estimates can be low (thinking tokens, long answers): the running spend is the backstop.
    monkeypatch.setattr(Engine, "estimate_usd", lambda self, pending: 0.0)
    pricey = ("models.m_openai.prices.output=1000", "engine.batch_size=5", "engine.window_per_model=5")
    engine = make_engine(tmp_path, emulator.url, "budget_usd=0.5", *pricey)
    path = engine.write_requests("s", requests(["m_openai"], 60))
    with pytest.raises(BudgetExceeded, match="resume"):
        engine.run("s", path)
    stored = engine.store.done_keys().collect().height
    spent = engine.spent_usd()
    engine.close()
    assert 0 < stored < 60 and spent >= 0.5
    engine = make_engine(tmp_path, emulator.url, "budget_usd=100", *pricey)
    calls = engine.run("s", path)
    res = engine.results(path, ["status"]).collect()
    engine.close()
    assert calls.made == 60 - stored
    assert res.height == 60 and (res["status"] == "ok").all()
    assert all(n == 1 for n in ok_answers(emulator.stats()).values())


def test_api_key_never_reaches_disk(tmp_path: Path, api_key: str) -> None:
    faults = FaultRates(server_500=0.3, malformed_json=0.1)
    with EmulatorServer(emulator_config(faults=faults)) as emu:
        engine = make_engine(tmp_path, emu.url, "engine.max_attempts=2")
        path = engine.write_requests("s", requests(["m_openai", "m_anthropic", "m_gemini"], 60))
        engine.run("s", path)
        engine.manifest.save()
        engine.close()
        assert api_key[-12:] not in str(emu.stats())
    needle = api_key.encode()
    import ray

    # The run directory, the call store, and Ray's logs of this session (driver and actors).
    session = Path(ray._private.worker._global_node.get_session_dir_path())
    files = [p for root in (tmp_path, session / "logs") for p in root.rglob("*") if p.is_file()]
    assert any(p.suffix == ".parquet" for p in files) and any(
        p.suffix in (".log", ".out", ".err") for p in files
    )
    for p in files:
        assert needle not in p.read_bytes(), f"API key found in {p}"
