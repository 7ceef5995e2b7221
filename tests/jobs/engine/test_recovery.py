"""The clients' logs into the store, and the count of calls a kill may have paid twice."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pyarrow as pa

from actors.storage import Location
from actors.store import STORE_SCHEMA, CallStore
from actors.wal import WalSettings, WalWriter, list_files, read_rows
from jobs.engine.recovery import Compactor, on_the_wire, paid_twice, settle, settle_dead
from jobs.engine.rundir import Manifest, RunDir
from tests.actors.test_wal import row


def write_log(
    wal: Path,
    session: str,
    client: str,
    stage: str,
    sent: list[str],
    answered: list[str],
    seal_rows: int = 2000,
) -> None:
    writer = WalWriter(WalSettings(str(wal), session, seal_rows=seal_rows), client)

    async def go() -> None:
        for k in sent:
            await writer.sent(k, "m", stage)
        for k in answered:
            await writer.answered(row(k))

    asyncio.run(go())
    writer.seal()


def stored_keys(store: CallStore) -> list[str]:
    return sorted(store.scan(["key"]).collect()["key"])


def test_compaction_moves_sealed_answers_and_keeps_only_sends_on_the_wire(tmp_path: Path) -> None:
    wal, store = tmp_path / "wal", CallStore(str(tmp_path / "cache"))
    write_log(wal, "live", "c1", "responses", ["a", "b", "c"], ["a", "c"], seal_rows=1)  # two segments
    write_log(wal, "other", "c9", "responses", ["x"], ["x"])  # another session: not ours to touch

    assert Compactor(Location(str(wal)), store, "live").compact() == 2
    assert stored_keys(store) == ["a", "c"]
    ours = [f for f in list_files(Location(str(wal))) if f.session == "live"]
    assert [f.kind for f in ours] == ["events"]  # one carry file: the send of "b"
    assert on_the_wire(Location(str(wal))).rows() == [("responses", "m", 1)]  # b (x was answered)
    assert len([f for f in list_files(Location(str(wal))) if f.session == "other"]) == 2


def test_settling_a_dead_session_stores_its_answers_once_and_counts_per_stage_and_model(
    tmp_path: Path,
) -> None:
    wal, store = tmp_path / "wal", CallStore(str(tmp_path / "cache"))
    manifest = Manifest(RunDir.open(str(tmp_path / "run")).root)
    write_log(wal, "dead", "c1", "scores", ["a", "b", "c"], ["a"])
    write_log(wal, "dead", "c2", "responses", ["d", "e"], ["d"])
    # "a" reached a shard before the kill, its segment was not deleted yet: stored once only.
    store.write_shard(pa.Table.from_pylist([row("zz")], schema=STORE_SCHEMA))
    rows_a = [f for f in list_files(Location(str(wal))) if f.chain == "dead-c1" and f.kind == "arrows"]
    store.write_shard(read_rows(Location(str(wal)), rows_a))

    assert settle_dead(Location(str(wal)), store, manifest, current="now", quiet_s=0) == 3
    assert stored_keys(store) == ["a", "d", "zz"]
    assert list_files(Location(str(wal))) == []
    entries = sorted((e["stage"], e["model"], e["may_be_paid_twice"]) for e in manifest.data["interrupted"])
    assert entries == [("responses", "m", 1), ("scores", "m", 2)]
    assert paid_twice(manifest.data).rows() == [("responses", "m", 1), ("scores", "m", 2)]


def test_a_session_is_counted_once_even_if_settling_is_cut_short(tmp_path: Path) -> None:
    wal, store = tmp_path / "wal", CallStore(str(tmp_path / "cache"))
    manifest = Manifest(RunDir.open(str(tmp_path / "run")).root)
    write_log(wal, "dead", "c1", "scores", ["a", "b"], [])
    files = list_files(Location(str(wal)))
    contents = {f.path: Path(f.path).read_bytes() for f in files}
    settle(Location(str(wal)), store, manifest, "dead")
    for path, data in contents.items():  # as if the kill came before the log was deleted
        Path(path).write_bytes(data)
    settle(Location(str(wal)), store, manifest, "dead")
    assert [e["may_be_paid_twice"] for e in manifest.data["interrupted"]] == [2]


def test_counts_of_runs_made_by_0_1_are_still_read() -> None:
    old = {"interrupted": [{"stage": "responses", "sessions": ["x"], "in_flight": 7}]}
    assert paid_twice(old).rows() == [("responses", "(any)", 7)]
