"""Stages through the providers' batch APIs: full stages, exact repair, auto's deadline, resume.

The emulator counts batch submissions and well-formed answers per online request hash, so
exactly-once is proved across both paths: every request is answered once, whichever way.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from actors.emulator.config import BatchBehaviour
from actors.emulator.server import EmulatorServer
from actors.emulator.stats import request_hash
from actors.providers.base import get_adapter
from actors.storage import Location
from actors.types import spec_from_json
from jobs.engine.batching.records import BatchLedger, BatchRecord
from jobs.outputs.status import format_status, run_status
from tests.conftest import emulator_config
from tests.jobs.engine.test_engine import make_engine, requests

pytestmark = pytest.mark.usefixtures("ray_local")

ALL = ["m_openai", "m_anthropic", "m_gemini"]
PATHS = {"openai": "/v1/chat/completions", "anthropic": "/v1/messages"}


def hashes(engine: Any, path: str) -> dict[str, str]:
    """Call key -> the emulator's hash of the online request it stands for."""
    out = {}
    for key, model, spec in pl.read_parquet(path).select("key", "model", "spec").iter_rows():
        ep = engine._endpoints[model]
        body = get_adapter(ep.provider).build(ep, spec_from_json(spec)).json
        online = PATHS.get(ep.provider, f"/v1beta/models/{ep.model_id}:generateContent")
        out[key] = request_hash(online, body)
    return out


def test_a_whole_stage_goes_through_each_batch_api_at_the_batch_price(tmp_path: Path, api_key: str) -> None:
    with EmulatorServer(emulator_config(batch=BatchBehaviour(delay_s=0.5))) as emu:
        engine = make_engine(tmp_path, emu.url, "stages.responses.route=batch", "batch.poll_s=0.2")
        path = engine.write_requests("responses", requests(ALL, 60))
        calls = engine.run("responses", path)
        stats = emu.stats()
        res = engine.results(path, ["status", "text", "input_tokens", "output_tokens", "cost_usd"]).collect()
        again = engine.run("responses", path)
        engine.close()
    by_hash = hashes(engine, path)
    assert stats["by_hash"] == {}  # not one online call
    assert stats["batches"] == 3  # one per model and provider
    assert {stats["batch_by_hash"][h] for h in by_hash.values()} == {1}
    assert {stats["ok_by_hash"][h] for h in by_hash.values()} == {1}
    assert (calls.made, calls.ok, calls.batch.answered, calls.batch.to_online) == (60, 60, 60, 0)
    assert res.height == 60 and (res["status"] == "ok").all()
    # Priced at the batch discount (0.5) of the registry prices in tests (1.0 in, 2.0 out per M).
    full = (res["input_tokens"] * 1.0 + res["output_tokens"] * 2.0) / 1e6
    assert ((res["cost_usd"] - full * 0.5).abs() < 1e-12).all()
    assert again.made == 0 and again.batch.submitted_items == 0  # answered is answered, either path
    states = {r.state for r in BatchLedger(engine.run_dir.root.child("batches")).load()}
    assert states == {"collected"}


def test_partial_failure_and_expiry_are_repaired_exactly(tmp_path: Path, api_key: str) -> None:
    behaviour = BatchBehaviour(delay_s=1.2, expire_s=0.8, failure_rate=0.25)
    with EmulatorServer(emulator_config(batch=behaviour, seed=4)) as emu:
        engine = make_engine(
            tmp_path, emu.url, "stages.responses.route=batch", "batch.poll_s=0.2", "batch.max_rounds=2"
        )
        path = engine.write_requests("responses", requests(ALL, 45))
        calls = engine.run("responses", path)
        stats = emu.stats()
        first_round = list(emu.emulator.batches.batches.values())[:3]
        engine.close()
    unanswered = {
        request_hash(item.path, item.body)
        for batch in first_round
        for item in batch.items
        if item.outcome != "answered" or item.status != 200
    }
    by_hash = set(hashes(engine, path).values())
    assert 0 < len(unanswered) < len(by_hash)
    resubmitted = {h for h, n in stats["batch_by_hash"].items() if n == 2}
    assert resubmitted == unanswered  # exactly the failed and expired items, nothing else
    assert max(stats["batch_by_hash"].values()) == 2  # max_rounds: then online
    # Every request answered exactly once over batch and online together.
    assert {stats["ok_by_hash"].get(h, 0) for h in by_hash} == {1}
    assert calls.ok == 45 and calls.batch.resubmitted == len(unanswered)
    assert calls.batch.to_online == sum(stats["by_hash"].values())


def test_auto_meets_its_deadline_by_moving_stragglers_online(tmp_path: Path, api_key: str) -> None:
    deadline = 12.0
    with EmulatorServer(emulator_config(batch=BatchBehaviour(delay_s=60.0))) as emu:
        engine = make_engine(
            tmp_path,
            emu.url,
            "stages.responses.route=auto",
            f"stages.responses.batch_deadline_s={deadline}",
            "batch.online_safety=3",
            "batch.cancel_grace_s=5",
            # An account of its own: a limiter actor left by an earlier test in this Ray
            # session (named per account, first limits win) must not set this test's pace.
            "accounts.auto_deadline.limits.rpm=1200",
            "models.m_openai.account=auto_deadline",
            models=("m_openai",),
        )
        engine.start_clients()
        path = engine.write_requests("responses", requests(["m_openai"], 40))
        t0 = time.monotonic()
        calls = engine.run("responses", path)
        elapsed = time.monotonic() - t0
        stats = emu.stats()
        engine.close()
    by_hash = set(hashes(engine, path).values())
    assert elapsed < deadline
    assert calls.ok == 40
    assert calls.batch.submitted_items == 40
    assert 0 < calls.batch.answered < 40  # what the batch finished before the cut-over counts
    assert calls.batch.to_online == 40 - calls.batch.answered == sum(stats["by_hash"].values())
    assert {stats["ok_by_hash"].get(h, 0) for h in by_hash} == {1}


def test_auto_goes_online_when_the_deadline_leaves_no_room(tmp_path: Path, api_key: str) -> None:
    with EmulatorServer(emulator_config()) as emu:
        engine = make_engine(
            tmp_path,
            emu.url,
            "stages.responses.route=auto",
            "stages.responses.batch_deadline_s=1",
            "models.m_openai.limits.rpm=60",
            models=("m_openai",),
        )
        path = engine.write_requests("responses", requests(["m_openai"], 10))
        calls = engine.run("responses", path)
        stats = emu.stats()
        engine.close()
    assert stats["batches"] == 0 and calls.ok == 10 and calls.batch.submitted_items == 0


def test_a_batch_interrupted_mid_create_is_sent_again_and_counted(tmp_path: Path, api_key: str) -> None:
    with EmulatorServer(emulator_config(batch=BatchBehaviour(delay_s=0.2))) as emu:
        engine = make_engine(
            tmp_path, emu.url, "stages.responses.route=batch", "batch.poll_s=0.1", models=("m_openai",)
        )
        path = engine.write_requests("responses", requests(["m_openai"], 8))
        keys = pl.read_parquet(path)["key"].to_list()
        ledger = BatchLedger(engine.run_dir.root.child("batches"))
        ledger.begin(BatchRecord.new("responses", "m_openai", "openai", 0, 3), keys[:3])  # died in create
        calls = engine.run("responses", path)
        engine.close()
    assert calls.ok == 8 and calls.batch.unconfirmed_items == 3
    status = run_status(str(tmp_path / "run"))
    assert status["batches"]["totals"]["unconfirmed_items"] == 3
    assert status["batches"]["in_flight"] == []


def test_status_lists_batches_in_flight(tmp_path: Path) -> None:
    run = tmp_path / "run"
    ledger = BatchLedger(Location(str(run)).child("batches"))
    rec = BatchRecord.new("responses", "m_openai", "openai", 0, 12)
    rec.created_at -= 30
    ledger.begin(rec, [f"k{i}" for i in range(12)])
    rec.state, rec.remote_id, rec.counts = "submitted", "batch_1", {"completed": 5, "failed": 1, "total": 12}
    ledger.save(rec)
    (run / "manifest.json").write_text(json.dumps({"run_id": "r", "created_at": "now", "stages": {}}))
    status = run_status(str(run))
    [item] = status["batches"]["in_flight"]
    assert item["items"] == 12 and item["age_s"] >= 30 and item["counts"]["completed"] == 5
    assert "batch_1" in format_status(status)


def test_estimate_shows_the_batch_saving(tmp_path: Path) -> None:
    from jobs.config import load_config
    from jobs.estimate.estimate import estimate, format_estimate

    demo = Path(__file__).resolve().parents[3] / "conf" / "demo.yaml"
    run = f"run_dir={tmp_path / 'run'}"
    online = estimate(load_config(demo, [run])).as_dict()
    batch = estimate(load_config(demo, [run, "stages.responses.route=batch"]))
    routed = batch.as_dict()
    tight = estimate(
        load_config(demo, [run, "stages.responses.route=auto", "stages.responses.batch_deadline_s=1"])
    )
    assert online["batch_saving_usd"] == 0 and online["total_online_cost_usd"] == online["total_cost_usd"]
    lines = {(ln["stage"], ln["model"]): ln for ln in routed["lines"]}
    before = {(ln["stage"], ln["model"]): ln for ln in online["lines"]}
    for (stage, model), ln in lines.items():
        expect = "batch" if stage == "responses" and model != "grok_4" else "online"  # grok: batch_api false
        assert ln["route"] == expect, (stage, model)
        factor = 0.5 if expect == "batch" else 1.0
        assert ln["cost_usd"] == pytest.approx(before[(stage, model)]["cost_usd"] * factor, abs=1e-3)
    saving = routed["total_online_cost_usd"] - routed["total_cost_usd"]
    assert routed["batch_saving_usd"] == pytest.approx(saving, abs=1e-3) and saving > 0
    assert routed["total_online_cost_usd"] == pytest.approx(online["total_cost_usd"], abs=1e-3)
    assert "batch saving" in format_estimate(batch)
    assert tight.as_dict()["batch_saving_usd"] == 0  # auto with no room for batch stays online


@pytest.mark.parametrize(
    ("model", "adopted"), [("m_openai", True), ("m_gemini", True), ("m_anthropic", False)]
)
def test_a_create_cut_off_by_a_kill_is_found_by_its_tag_or_sent_again(
    tmp_path: Path, api_key: str, model: str, adopted: bool
) -> None:
    import asyncio

    import aiohttp

    from actors.providers.batch import BatchItem, get_batch_api
    from actors.providers.batch.base import BatchHttp

    with EmulatorServer(emulator_config(batch=BatchBehaviour(delay_s=0.3))) as emu:
        engine = make_engine(
            tmp_path, emu.url, "stages.responses.route=batch", "batch.poll_s=0.1", models=(model,)
        )
        path = engine.write_requests("responses", requests([model], 6))
        keys, specs = (pl.read_parquet(path)[c].to_list() for c in ("key", "spec"))
        ep = engine._endpoints[model]
        record = BatchRecord.new("responses", model, ep.provider, 0, 6)
        BatchLedger(engine.run_dir.root.child("batches")).begin(record, keys)
        adapter = get_adapter(ep.provider)
        items = [
            BatchItem(k, adapter.build(ep, spec_from_json(s)).json) for k, s in zip(keys, specs, strict=True)
        ]

        async def create_then_die() -> None:  # the provider made the batch; the id never reached disk
            async with aiohttp.ClientSession() as session:
                headers = {
                    **adapter.build(ep, spec_from_json(specs[0])).headers,
                    **adapter.auth_headers(os.environ[ep.api_key_env]),  # the key the run reads
                }
                await get_batch_api(ep.provider).submit(
                    BatchHttp(session, headers), ep, items, f"specstress-{record.id}"
                )  # type: ignore[union-attr]

        asyncio.run(create_then_die())
        calls = engine.run("responses", path)
        stats = emu.stats()
        engine.close()
    assert calls.ok == 6 and stats["by_hash"] == {}
    if adopted:
        assert stats["batches"] == 1 and set(stats["batch_by_hash"].values()) == {1}
        assert calls.batch.resumed_batches == 1 and calls.batch.unconfirmed_items == 0
    else:
        assert stats["batches"] == 2 and set(stats["batch_by_hash"].values()) == {2}
        assert calls.batch.unconfirmed_items == 6
    assert set(stats["ok_by_hash"].values()) == ({1} if adopted else {2})


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("stages.responses.route=fast", "stages.responses.route"),
        ("stages.rubrics.batch_deadline_s=0", "stages.rubrics.batch_deadline_s"),
        ("batch.providers.xai.max_requests=10", "batch.providers.xai"),
        ("batch.providers.openai.max_bytes=0", "batch.providers.openai.max_bytes"),
        ("models.m_openai.prices.batch_discount=1.5", "models.m_openai.prices.batch_discount"),
        ("emulator.batch_failure_rate=2", "emulator.batch_failure_rate"),
    ],
)
def test_bad_batch_config_names_the_key(tmp_path: Path, override: str, key: str) -> None:
    from actors.errors import ConfigError
    from jobs.config import load_config
    from tests.conftest import run_conf_yaml

    cfg = tmp_path / "conf.yaml"
    cfg.write_text(run_conf_yaml("http://127.0.0.1:1", tmp_path / "run"))
    with pytest.raises(ConfigError, match=f"'{key}'"):
        load_config(cfg, [override])


def test_a_batch_the_provider_no_longer_knows_goes_online(tmp_path: Path, api_key: str) -> None:
    with EmulatorServer(emulator_config(batch=BatchBehaviour(delay_s=0.2))) as emu:
        engine = make_engine(
            tmp_path, emu.url, "stages.responses.route=batch", "batch.poll_s=0.1", models=("m_openai",)
        )
        path = engine.write_requests("responses", requests(["m_openai"], 5))
        keys = pl.read_parquet(path)["key"].to_list()
        ledger = BatchLedger(engine.run_dir.root.child("batches"))
        gone = BatchRecord.new("responses", "m_openai", "openai", 0, 5)
        ledger.begin(gone, keys)
        gone.state, gone.remote_id = "submitted", "batch_deleted"  # a live record the provider lost
        ledger.save(gone)
        calls = engine.run("responses", path)
        stats = emu.stats()
        engine.close()
    assert calls.ok == 5 and calls.batch.to_online == 5 and stats["batches"] == 0
    assert {r.state for r in ledger.load()} == {"abandoned"}
