"""Accounting of a stage's calls: the `StageCalls` figures, kept current in the manifest.

`specstress status` reads the manifest while a stage runs, so every stored batch of answers
(online or from a provider batch) is counted here and the figures are saved as the store
flushes. (Calls a killed session may have paid for are counted from the logs: `recovery.py`.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from jobs.engine.batching.runner import BatchFigures
from jobs.engine.failfast import FailFast
from jobs.engine.rundir import Manifest


def retries(attempts: pa.ChunkedArray) -> int:
    """Attempts after the first, summed over rows. A call that failed before its first attempt
    (no key) has 0 attempts and no retry, so it must not count as -1."""
    return pc.sum(pc.max_element_wise(pc.subtract(attempts, 1), 0)).as_py() or 0


@dataclass
class StageCalls:
    """What one `run` did, for the manifest and the caller."""

    requests: int = 0
    cached: int = 0
    made: int = 0
    ok: int = 0
    failed: int = 0
    rate_limited: int = 0
    retries: int = 0
    redispatched: int = 0
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    batch: BatchFigures = field(default_factory=BatchFigures)
    """What the providers' batch APIs did for this table (stages in `batch`/`auto` mode)."""

    def as_dict(self) -> dict[str, Any]:
        return {**vars(self), "batch": self.batch.as_dict()}

    def add(self, rows: pa.Table) -> None:
        """Count stored rows (store schema): outcomes, retries, tokens, dollars, failure kinds."""
        ok = pc.equal(rows["status"], "ok")
        n_ok = pc.sum(ok).as_py() or 0
        self.made += rows.num_rows
        self.ok += n_ok
        self.failed += rows.num_rows - n_ok
        self.rate_limited += pc.sum(rows["rate_limited"]).as_py() or 0
        self.retries += retries(rows["attempts"])
        self.cost_usd += pc.sum(rows["cost_usd"]).as_py() or 0.0
        self.input_tokens += pc.sum(rows["input_tokens"]).as_py() or 0
        self.output_tokens += pc.sum(rows["output_tokens"]).as_py() or 0
        self.cached_input_tokens += pc.sum(rows["cached_input_tokens"]).as_py() or 0
        if n_ok < rows.num_rows:
            failed = pl.from_arrow(rows.filter(pc.invert(ok)).select(["error_kind"]))
            for kind, n in failed["error_kind"].value_counts().iter_rows():
                self.failures[kind] = self.failures.get(kind, 0) + n


class StageAccount:
    """One stage's `StageCalls`, saved to the manifest under the stage's name, and its
    `FailFast` rule, which sees every stored row (online or from a provider batch)."""

    def __init__(self, stage: str, manifest: Manifest, fail_fast: FailFast) -> None:
        self.stage = stage
        self.calls = StageCalls()
        self.fail_fast = fail_fast
        self._manifest = manifest

    def add(self, batch: pa.RecordBatch) -> pa.Table:
        """Count a stored record batch; returns it as a table for the caller's progress view."""
        rows = pa.Table.from_batches([batch])
        self.calls.add(rows)
        self.fail_fast.add(rows)
        return rows

    def stored(self, batch: pa.RecordBatch) -> None:
        """Count rows written to the store outside the dispatch (provider batches) and save at once."""
        self.add(batch)
        self.save()

    def save(self) -> None:
        self._manifest.set_calls(self.stage, self.calls.as_dict())
