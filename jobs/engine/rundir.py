"""The run directory and its manifest.

```
<run>/config.yaml      resolved config (API-key variable names only, never values)
<run>/manifest.json    stage states, counts, calls, tokens, cost, errors, sessions
<run>/tables/          one Parquet table per stage
<run>/requests/        the requests each calling stage handed to the engine
<run>/wal/             the clients' write-ahead logs: sends and answers, until the store has them
<run>/batches/         provider batches: keys and state of each (jobs/engine/batching/records.py)
```
The manifest is rewritten whole (atomically) at every store flush, so `specstress status`
reads a consistent picture while a run goes on and after it stops.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from actors.storage import Location

MANIFEST = "manifest.json"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Manifest:
    """The run's JSON record. Holds figures, never secrets."""

    def __init__(self, loc: Location) -> None:
        self._loc = loc
        text = loc.read_text(MANIFEST)
        self.data: dict[str, Any] = (
            json.loads(text)
            if text
            else {
                "run_id": uuid.uuid4().hex[:12],
                "created_at": now_iso(),
                "stages": {},
                "sessions": [],
            }
        )

    @property
    def run_id(self) -> str:
        return str(self.data["run_id"])

    def stage(self, name: str) -> dict[str, Any]:
        return self.data["stages"].setdefault(name, {"state": "pending"})

    def set_stage(self, name: str, **fields: Any) -> None:
        self.stage(name).update(fields)
        self.save()

    def set_calls(self, requests: str, figures: dict[str, Any]) -> None:
        """Record the engine's figures for one requests table (a stage may hand over several)."""
        self.data.setdefault("calls", {})[requests] = figures
        self.save()

    def save(self) -> None:
        self._loc.write_text(MANIFEST, json.dumps(self.data, indent=1, sort_keys=True))


@dataclass
class RunDir:
    """Paths of one run, on any filesystem pyarrow knows."""

    root: Location

    @classmethod
    def open(cls, uri: str) -> RunDir:
        loc = Location(uri)
        loc.makedirs()
        for sub in ("tables", "requests", "wal"):
            loc.child(sub).makedirs()
        return cls(loc)

    @property
    def tables(self) -> Location:
        return self.root.child("tables")

    @property
    def requests(self) -> Location:
        return self.root.child("requests")

    @property
    def wal(self) -> Location:
        return self.root.child("wal")

    def table_path(self, name: str) -> str:
        return self.tables.join(f"{name}.parquet")


def default_cache(run_uri: str) -> str:
    return f"{run_uri.rstrip('/')}/cache" if "://" in run_uri else os.path.join(run_uri, "cache")
