"""Durable batch records in the run store: `<run>/batches/<id>.json` and `<id>.keys`.

The keys file and a `submitting` record are written (atomically) before a batch is sent,
and the provider's batch id right after it is created, before the submit returns. So a
run killed at any moment knows every request that may sit in a provider's batch: a
resumed run polls and collects `submitted` batches and never sends their requests again.

A `submitting` record found on resume means the driver died during the create call: the
provider may or may not have made that batch. Every batch is created with the tag
`specstress-<record id>` (OpenAI metadata, Gemini display name), so a resumed run looks it
up and adopts it if it exists. Anthropic's batches carry no tag to search by; there (or
when the lookup finds nothing) the record becomes `unconfirmed` and its requests are sent
again: at most those are paid twice, and `specstress status` counts them.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from actors.storage import Location

BATCHES_DIR = "batches"

State = Literal["submitting", "submitted", "cancelling", "collected", "unconfirmed", "refused", "abandoned"]
"""refused: the provider rejected the create (its calls went online); abandoned: cancelled near
an `auto` deadline and still open after the grace period, or no longer pollable (404, 401):
its calls went online."""
LIVE: frozenset[str] = frozenset({"submitted", "cancelling"})
"""States whose requests sit in a provider's batch: never sent again while in them."""


@dataclass
class BatchRecord:
    """One batch as the run knows it; `keys` live in a separate file, written once."""

    id: str
    stage: str
    model: str
    provider: str
    round: int
    n_items: int
    state: State = "submitting"
    remote_id: str | None = None
    created_at: float = field(default_factory=time.time)
    submitted_at: float | None = None
    ended_at: float | None = None
    provider_status: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    """The provider's item counts at the last poll."""
    outcome: dict[str, int] = field(default_factory=dict)
    """After collection: ok, failed (stored as failures), missing (sent again)."""

    @property
    def live(self) -> bool:
        return self.state in LIVE

    @staticmethod
    def new(stage: str, model: str, provider: str, round_no: int, n_items: int) -> BatchRecord:
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        return BatchRecord(f"{stamp}-{uuid.uuid4().hex[:8]}", stage, model, provider, round_no, n_items)


class BatchLedger:
    """The records of one run's batches."""

    def __init__(self, loc: Location) -> None:
        self.loc = loc
        self.loc.makedirs()

    def begin(self, record: BatchRecord, keys: list[str]) -> None:
        """Persist the keys, then the `submitting` record: both are on disk before the create call."""
        self.loc.write_text(f"{record.id}.keys", "\n".join(keys) + "\n")
        self.save(record)

    def save(self, record: BatchRecord) -> None:
        self.loc.write_text(f"{record.id}.json", json.dumps(asdict(record), sort_keys=True))

    def keys(self, record: BatchRecord) -> list[str]:
        text = self.loc.read_text(f"{record.id}.keys") or ""
        return [k for k in text.split("\n") if k]

    def load(self) -> list[BatchRecord]:
        out = []
        for path in self.loc.list_files(".json"):
            with self.loc.fs.open_input_stream(path) as src:
                data: dict[str, Any] = json.loads(src.read())
            out.append(BatchRecord(**data))
        return sorted(out, key=lambda r: r.created_at)


def batch_status(run_root: Location, now: float | None = None) -> dict[str, Any]:
    """The batches of a run for `specstress status`: those in flight with age and counts, and totals."""
    loc = run_root.child(BATCHES_DIR)
    records = BatchLedger(loc).load() if loc.fs.get_file_info(loc.path).type.name == "Directory" else []
    now = time.time() if now is None else now
    in_flight = [
        {
            "id": r.id,
            "stage": r.stage,
            "model": r.model,
            "provider": r.provider,
            "remote_id": r.remote_id,
            "state": r.state,
            "provider_status": r.provider_status,
            "round": r.round,
            "items": r.n_items,
            "age_s": round(now - r.created_at, 1),
            "counts": r.counts,
        }
        for r in records
        if r.live or r.state == "submitting"
    ]
    totals: dict[str, int] = {"batches": len(records), "items": sum(r.n_items for r in records)}
    for r in records:
        totals[f"{r.state}_batches"] = totals.get(f"{r.state}_batches", 0) + 1
        for k, v in r.outcome.items():
            totals[f"items_{k}"] = totals.get(f"items_{k}", 0) + v
    totals["unconfirmed_items"] = sum(r.n_items for r in records if r.state == "unconfirmed")
    return {"in_flight": in_flight, "totals": totals}
