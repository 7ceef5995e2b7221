"""The write-ahead log of a client actor: each send recorded before it goes out, each answer
durable before anything treats it as done.

A client writes one *chain* of segments under the run's `wal/` directory, named
`<session>-<client>`. A segment is two files:

- `<chain>.<seq>.events`: a line per event. `S key model stage` before an HTTP request
  goes out; `D key` once the call's row is in the answers file.
- `<chain>.<seq>.arrows`: the calls' rows (store schema) as an Arrow IPC stream.

Records are group-committed: every `sent`/`answered` waits for the next commit, and one
commit, `GATHER_S` after the first record that waits for it, writes everything that arrived
meanwhile. On a local or NFS path a commit appends
to the open segment (`.open.` in its names) and flushes it to the OS, a few microseconds,
so a SIGKILL of any process loses nothing committed; the segment is sealed (renamed) after
`seal_s` seconds or `seal_rows` rows. Object stores cannot append: there every commit is a
segment of its own, written as whole objects in a thread while the next commit gathers,
at most every `OBJECT_COMMIT_S` (a bound on PUTs, at the price of that much latency).

After a kill, a chain's `S` keys without a `D` are the calls that were on the wire: paid,
perhaps, without an answer anyone kept. The driver counts them (jobs/engine/recovery.py).
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.fs as pafs

from actors.storage import Location
from actors.store import STORE_SCHEMA

SENT = "S"
DONE = "D"
EVENTS = "events"
ROWS = "arrows"
OPEN = "open"
CARRY = "carry"

GATHER_S = 0.005
"""How long a commit waits for more records to join it: a few milliseconds more per send and
per answer (nothing beside a model's seconds) for fewer, larger writes, so the log costs the
client little CPU at thousands of calls a second."""
OBJECT_COMMIT_S = 0.25
"""Least time between two commits of one client on an object store: at most 4 segments a second."""
READ_THREADS = 16
"""Files read at once on an object store, where each read is a round trip."""

EVENT_SCHEMA = {"event": pl.String, "key": pl.String, "model": pl.String, "stage": pl.String}
OUTSTANDING_SCHEMA = {"chain": pl.String, "key": pl.String, "model": pl.String, "stage": pl.String}


@dataclass(frozen=True)
class WalSettings:
    """Where and how a client logs; plain data, so it travels inside `ClientSettings`."""

    uri: str
    """The run's `wal/` directory (local path or object-store URI)."""
    session: str
    """The driver session the client serves; a resumed run settles the sessions before it."""
    seal_s: float = 10.0
    seal_rows: int = 2000


@dataclass(frozen=True)
class WalFile:
    """One file of the log, as its name describes it."""

    path: str
    chain: str
    kind: str  # EVENTS | ROWS
    sealed: bool
    mtime: float

    @property
    def session(self) -> str:
        return self.chain.split("-", 1)[0]


def _name(chain: str, part: str, kind: str, *, sealed: bool = True) -> str:
    return f"{chain}.{part}.{kind}" if sealed else f"{chain}.{part}.{OPEN}.{kind}"


class WalWriter:
    """One client's chain of segments."""

    def __init__(self, settings: WalSettings, client: str) -> None:
        self._loc = Location(settings.uri)
        self._loc.makedirs()
        self._settings = settings
        self.chain = f"{settings.session}-{client}"
        self._seq = 0
        self._rows: list[dict[str, Any]] = []
        self._lines: list[str] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._committer: asyncio.Task[None] | None = None
        self._segment: _OpenSegment | None = None

    async def sent(self, key: str, model: str, stage: str) -> None:
        """Record that `key` is about to go out; returns once the record is durable."""
        self._lines.append(f"{SENT}\t{key}\t{model}\t{stage}\n")
        await self._commit()

    async def answered(self, row: dict[str, Any]) -> None:
        """Log a finished call's row (ok or failed); returns once it is durable."""
        self._rows.append(row)
        self._lines.append(f"{DONE}\t{row['key']}\t\t\n")
        await self._commit()

    def seal(self) -> None:
        """Close the open segment so the driver may move it to the store (local paths)."""
        if self._segment is not None:
            self._segment.seal()
            self._segment = None

    async def _commit(self) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_all())
        await waiter

    async def _commit_all(self) -> None:
        """Write what has gathered, again and again, until nothing waits (group commit)."""
        while self._waiters:
            await asyncio.sleep(GATHER_S)  # let the calls of the next few ticks join this commit
            rows, lines, waiters = self._rows, self._lines, self._waiters
            self._rows, self._lines, self._waiters = [], [], []
            try:
                if self._loc.is_local:
                    self._append(rows, lines)
                else:
                    started = time.monotonic()
                    await asyncio.to_thread(self._put, rows, lines)
                    await asyncio.sleep(OBJECT_COMMIT_S - (time.monotonic() - started))
            except BaseException as exc:
                _wake(waiters, exc)
                if not isinstance(exc, Exception):
                    raise
            else:
                _wake(waiters, None)

    def _append(self, rows: list[dict[str, Any]], lines: list[str]) -> None:
        if self._segment is None:
            self._seq += 1
            self._segment = _OpenSegment(self._loc, self.chain, f"{self._seq:08d}")
        segment = self._segment
        segment.append(rows, lines)  # rows first: a `D` line never precedes its row
        if segment.rows >= self._settings.seal_rows or segment.age_s >= self._settings.seal_s:
            self.seal()

    def _put(self, rows: list[dict[str, Any]], lines: list[str]) -> None:
        self._seq += 1
        part = f"{self._seq:08d}"
        if rows:
            table = pa.Table.from_pylist(rows, schema=STORE_SCHEMA)
            self._loc.write_atomic(_name(self.chain, part, ROWS), lambda sink: _write_stream(sink, table))
        self._loc.write_text(_name(self.chain, part, EVENTS), "".join(lines))


class _OpenSegment:
    """A segment being appended to on a local path."""

    def __init__(self, loc: Location, chain: str, part: str) -> None:
        self._loc, self._chain, self._part = loc, chain, part
        self._events = open(loc.join(_name(chain, part, EVENTS, sealed=False)), "a", encoding="utf-8")  # noqa: SIM115
        self._sink: pa.OSFile | None = None
        self._stream: pa.ipc.RecordBatchStreamWriter | None = None
        self._opened = time.monotonic()
        self.rows = 0

    @property
    def age_s(self) -> float:
        return time.monotonic() - self._opened

    def append(self, rows: list[dict[str, Any]], lines: list[str]) -> None:
        if rows:
            if self._stream is None:
                self._sink = pa.OSFile(
                    self._loc.join(_name(self._chain, self._part, ROWS, sealed=False)), "wb"
                )
                self._stream = pa.ipc.new_stream(self._sink, STORE_SCHEMA)
            self._stream.write_batch(pa.RecordBatch.from_pylist(rows, schema=STORE_SCHEMA))
            self.rows += len(rows)
        self._events.write("".join(lines))
        self._events.flush()  # in the OS's hands: survives a SIGKILL of this process

    def seal(self) -> None:
        """Close both files and rename them to their sealed names, rows first."""
        if self._stream is not None and self._sink is not None:
            self._stream.close()
            self._sink.close()
            self._rename(ROWS)
        self._events.close()
        self._rename(EVENTS)

    def _rename(self, kind: str) -> None:
        os.replace(
            self._loc.join(_name(self._chain, self._part, kind, sealed=False)),
            self._loc.join(_name(self._chain, self._part, kind)),
        )


def _wake(waiters: list[asyncio.Future[None]], exc: BaseException | None) -> None:
    for w in waiters:
        if w.done():
            continue
        if exc is None:
            w.set_result(None)
        else:
            w.set_exception(exc)


def _write_stream(sink: Any, table: pa.Table) -> None:
    with pa.ipc.new_stream(sink, STORE_SCHEMA) as writer:
        writer.write_table(table)


# ---- reading -------------------------------------------------------------------------


def list_files(loc: Location) -> list[WalFile]:
    """Every file of the log, open ones included; unknown names are ignored."""
    selector = pafs.FileSelector(loc.path, allow_not_found=True)
    files = []
    for info in loc.fs.get_file_info(selector):
        parts = info.base_name.split(".")
        if info.type != pafs.FileType.File or len(parts) not in (3, 4) or parts[-1] not in (EVENTS, ROWS):
            continue
        mtime = info.mtime.timestamp() if info.mtime is not None else 0.0
        files.append(WalFile(info.path, parts[0], parts[-1], len(parts) == 3, mtime))
    return sorted(files, key=lambda f: f.path)


def _contents(loc: Location, files: Iterable[WalFile]) -> list[bytes]:
    """The bytes of `files`, in order (empty for a file gone since it was listed: a live
    session's segment sealed or compacted meanwhile); fetched in parallel on object stores."""

    def read(f: WalFile) -> bytes:
        try:
            with loc.fs.open_input_stream(f.path) as src:
                return bytes(src.read())
        except FileNotFoundError:
            return b""

    if loc.is_local:
        return [read(f) for f in files]
    with ThreadPoolExecutor(READ_THREADS) as pool:
        return list(pool.map(read, files))


def read_rows(loc: Location, files: Iterable[WalFile]) -> pa.Table:
    """The rows of answers files; a file cut off mid-write yields the batches before the cut."""
    batches: list[pa.RecordBatch] = []
    for data in _contents(loc, files):
        try:
            reader = pa.ipc.open_stream(data)
        except (pa.ArrowInvalid, OSError):
            continue  # not even the schema was written
        while True:
            try:
                batches.append(reader.read_next_batch())
            except (StopIteration, pa.ArrowInvalid, OSError):
                break
    return pa.Table.from_batches(batches, schema=STORE_SCHEMA)


def read_events(loc: Location, files: Iterable[WalFile]) -> pl.DataFrame:
    """The events of events files with their chain; a line cut off mid-write is dropped."""
    frames = []
    files = list(files)
    for f, data in zip(files, _contents(loc, files), strict=True):
        lines = data.decode("utf-8", "replace").split("\n")[
            :-1
        ]  # the last piece has no newline: empty, or cut off
        if lines:
            fields = [line.split("\t") for line in lines if line.count("\t") == 3]
            frame = pl.DataFrame(fields, schema=EVENT_SCHEMA, orient="row")
            frames.append(frame.with_columns(chain=pl.lit(f.chain)))
    if not frames:
        return pl.DataFrame(schema={**EVENT_SCHEMA, "chain": pl.String})
    return pl.concat(frames)


def outstanding(events: pl.DataFrame, answered: Iterable[str] = ()) -> pl.DataFrame:
    """Per chain, keys sent and neither marked done nor among `answered`: columns chain, key, model, stage."""
    done = events.filter(pl.col("event") == DONE).select("chain", "key")
    sent = events.filter(pl.col("event") == SENT).unique(["chain", "key"], keep="last")
    left = sent.join(done, on=["chain", "key"], how="anti")
    keys = pl.Series("key", list(answered), dtype=pl.String)
    if keys.len():
        left = left.filter(~pl.col("key").is_in(keys))
    return left.select(list(OUTSTANDING_SCHEMA))


def write_carry(loc: Location, left: pl.DataFrame) -> None:
    """Write outstanding sends back as sealed events files, one per chain, under fresh names."""
    for (chain,), part in left.group_by(["chain"]):
        text = "".join(
            f"{SENT}\t{k}\t{m}\t{s}\n" for k, m, s in part.select("key", "model", "stage").iter_rows()
        )
        loc.write_text(_name(str(chain), f"{CARRY}{uuid.uuid4().hex[:12]}", EVENTS), text)
