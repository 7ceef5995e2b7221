"""The clients' write-ahead logs (`actors/wal.py`) into the store, and the calls a kill may have paid twice.

While a session runs, `Compactor.compact` moves its sealed segments into store shards every
`engine.flush_s` and folds their events, keeping only the sends still on the wire. When a
session ends (at `Engine.close`, or after a kill, when the next session starts) `settle`
moves what is left to the store, records per stage and model the calls that were sent and
have no answer in the log (`may_be_paid_twice` in the manifest's `interrupted`), and
deletes the session's log. Those calls are the ones on the wire when the session died: a
provider may have billed them, and the resumed run sends them again.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import polars as pl
import pyarrow as pa

from actors.storage import Location
from actors.store import CallStore
from actors.wal import EVENTS, ROWS, WalFile, list_files, outstanding, read_events, read_rows, write_carry
from jobs.engine.rundir import Manifest

log = logging.getLogger("specstress.engine")

QUIET_S = 3.0
"""A dead session's log counts as final once no file of it changed for this long: its clients
pause within a second of the driver's death (the driver lease) and Ray ends them soon after."""
QUIET_MAX_WAIT_S = 30.0


class Compactor:
    """Moves one live session's sealed segments into the store."""

    def __init__(self, wal: Location, store: CallStore, session: str) -> None:
        self._wal, self._store, self._session = wal, store, session

    def compact(self) -> int:
        """Write the sealed answers as one shard and fold the sealed events; returns rows moved."""
        files = [f for f in list_files(self._wal) if f.session == self._session and f.sealed]
        rows_files = [f for f in files if f.kind == ROWS]
        moved = _store_rows(self._store, read_rows(self._wal, rows_files), dedupe=False)
        _delete(self._wal, rows_files)
        events = [f for f in files if f.kind == EVENTS]
        if len(events) > 1:
            write_carry(self._wal, outstanding(read_events(self._wal, events)))
            _delete(self._wal, events)
        return moved


def settle(wal: Location, store: CallStore, manifest: Manifest, session: str) -> int:
    """End one session's log: answers into the store, unanswered sends counted; returns that count."""
    files = [f for f in list_files(wal) if f.session == session]
    rows, left = _read_log(wal, files)
    _store_rows(store, rows, dedupe=True)
    _record(manifest, session, left)
    _delete(wal, files)
    return left.height


def settle_dead(
    wal: Location, store: CallStore, manifest: Manifest, current: str, *, quiet_s: float = QUIET_S
) -> int:
    """Settle the logs of every earlier session (each one was killed); returns the calls counted."""
    dead = sorted({f.session for f in list_files(wal)} - {current})
    total = 0
    for session in dead:
        _wait_quiet(wal, session, quiet_s)
        total += settle(wal, store, manifest, session)
    return total


def paid_twice(manifest: dict[str, Any]) -> pl.DataFrame:
    """The manifest's settled counts summed per stage and model: columns stage, model, calls."""
    rows = [
        # Runs made by specstress 0.1 counted per stage only, from keys handed to clients (`in_flight`).
        (e["stage"], e.get("model", "(any)"), e.get("may_be_paid_twice", e.get("in_flight", 0)))
        for e in manifest.get("interrupted", [])
    ]
    frame = pl.DataFrame(
        rows, schema={"stage": pl.String, "model": pl.String, "calls": pl.Int64}, orient="row"
    )
    return frame.group_by("stage", "model").agg(pl.col("calls").sum()).sort("stage", "model")


def on_the_wire(wal: Location) -> pl.DataFrame:
    """Sends in logs not settled yet with no answer (read only): columns stage, model, calls.

    While a run goes on these are its calls on the wire; after a kill, the calls the resume
    will count as perhaps paid twice.
    """
    left = _read_log(wal, list_files(wal))[1]
    return left.group_by("stage", "model").agg(calls=pl.len()).sort("stage", "model")


def _read_log(wal: Location, files: list[WalFile]) -> tuple[pa.Table, pl.DataFrame]:
    """The answers in `files`, and the sends in them with no answer (see `outstanding`)."""
    rows = read_rows(wal, [f for f in files if f.kind == ROWS])
    events = read_events(wal, [f for f in files if f.kind == EVENTS])
    return rows, outstanding(events, rows.column("key").to_pylist())


def _store_rows(store: CallStore, rows: pa.Table, *, dedupe: bool) -> int:
    """Write `rows` as one shard, less those the store holds if `dedupe`; returns the rows written."""
    if dedupe and rows.num_rows:
        # A kill between writing a shard and deleting its segments leaves rows in both.
        ids = pl.from_arrow(rows.select(["key", "finished_at"]))
        assert isinstance(ids, pl.DataFrame)
        stored = store.scan(["key", "finished_at"]).join(ids.lazy(), on=["key", "finished_at"], how="semi")
        fresh = ids.with_row_index("i").join(stored.collect(), on=["key", "finished_at"], how="anti")
        rows = rows.take(pa.array(fresh["i"].to_numpy()))
    if rows.num_rows:
        store.write_shard(rows)
    return rows.num_rows


def _record(manifest: Manifest, session: str, left: pl.DataFrame) -> None:
    """Note a session's unanswered sends in the manifest, once per session, per stage and model."""
    if left.is_empty():
        return
    entries: list[dict[str, object]] = manifest.data.setdefault("interrupted", [])
    if any(e.get("session") == session for e in entries):
        return
    counts = left.group_by("stage", "model").len().sort("stage", "model")
    for stage, model, n in counts.iter_rows():
        entries.append({"session": session, "stage": stage, "model": model, "may_be_paid_twice": n})
        log.warning(
            "stage '%s', model '%s': %d calls were on the wire when session %s ended and may have been "
            "paid twice; they are sent again",
            stage,
            model,
            n,
            session,
        )
    manifest.save()


def _wait_quiet(wal: Location, session: str, quiet_s: float) -> None:
    deadline = time.monotonic() + QUIET_MAX_WAIT_S
    while time.monotonic() < deadline:
        newest = max((f.mtime for f in list_files(wal) if f.session == session), default=0.0)
        if time.time() - newest >= quiet_s:
            return
        time.sleep(0.2)
    log.warning(
        "the log of session %s still changes after %.0f s; settling it anyway", session, QUIET_MAX_WAIT_S
    )


def _delete(wal: Location, files: list[WalFile]) -> None:
    for f in files:
        wal.fs.delete_file(f.path)
