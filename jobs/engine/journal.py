"""The dispatch journal: which keys a session handed to clients, written before it hands them.

After a kill, keys in an old session's journal that never reached the store were in flight
(or in the unflushed buffer) when the driver died: those, and only those, may have been
paid for and are sent again. The journal is how a resumed run counts them.

On a local or NFS path the journal is one file per session, appended and flushed before
each batch goes out, so the count is exact. Object stores cannot append, and a PUT per
batch would put a network round trip in front of every dispatch, so there the engine
journals a window of keys ahead (`ahead`) in one object: the count after a SIGKILL is then
an upper bound, off by at most the undispatched rest of one window per model. A drained
stop (SIGINT) rewrites the journal to exactly the calls it abandoned.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

import polars as pl

from actors.storage import Location


class Journal:
    """Append-only key log of one session (one file, or one object per recorded chunk)."""

    def __init__(self, loc: Location, session_id: str | None = None) -> None:
        self._loc = loc
        self.session_id = session_id or uuid.uuid4().hex[:12]
        self._name = f"{self.session_id}.keys"
        self._seq = 0
        self._fh = open(loc.join(self._name), "a", encoding="ascii") if loc.is_local else None  # noqa: SIM115

    @property
    def appends(self) -> bool:
        """True where a record is a cheap local append; False on object stores (record in chunks)."""
        return self._fh is not None

    def record(self, keys: Iterable[str]) -> None:
        text = "".join(f"{k}\n" for k in keys)
        if not text:
            return
        if self._fh is not None:
            self._fh.write(text)
            self._fh.flush()  # in the OS's hands now: survives SIGKILL of this process
        else:
            self._seq += 1
            self._loc.write_text(f"{self.session_id}.{self._seq:08d}.keys", text)

    def close(self, *, keep: Iterable[str] = ()) -> None:
        """End the session: delete its journal, keeping only `keep` (calls abandoned in flight)."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        for path in self._own_files():
            self._loc.fs.delete_file(path)
        text = "".join(f"{k}\n" for k in keep)
        if text:
            self._loc.write_text(f"{self.session_id}.abandoned.keys", text)

    def _own_files(self) -> list[str]:
        return [p for p in self._loc.list_files(".keys") if p.rsplit("/", 1)[-1].startswith(self.session_id)]


def dangling(loc: Location, current: str) -> pl.DataFrame:
    """Keys journaled by earlier sessions that did not close cleanly: columns key, session."""
    frames = []
    for path in loc.list_files(".keys"):
        sid = path.rsplit("/", 1)[-1].split(".", 1)[0]
        if sid == current:
            continue
        with loc.fs.open_input_stream(path) as src:
            data = src.read()
        if data:
            keys = pl.read_csv(data, has_header=False, new_columns=["key"], schema={"key": pl.String})
            frames.append(keys.with_columns(session=pl.lit(sid)))
    if not frames:
        return pl.DataFrame(schema={"key": pl.String, "session": pl.String})
    return pl.concat(frames).unique()


def discard(loc: Location, session_ids: Iterable[str]) -> None:
    ids = set(session_ids)
    for path in loc.list_files(".keys"):
        if path.rsplit("/", 1)[-1].split(".", 1)[0] in ids:
            loc.fs.delete_file(path)
