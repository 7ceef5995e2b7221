"""The figures of a stage's calls, counted from stored rows."""

from __future__ import annotations

import pyarrow as pa

from jobs.engine.accounting import StageCalls
from jobs.engine.progress import Progress


def rows(model: str, outcomes: list[str], attempts: int = 1, error: str = "no such model") -> pa.Table:
    """Stored rows of `model`: "ok", or the error kind of a failed call."""
    n = len(outcomes)
    return pa.table(
        {
            "model": [model] * n,
            "status": ["ok" if o == "ok" else "failed" for o in outcomes],
            "error_kind": [None if o == "ok" else o for o in outcomes],
            "error": [None if o == "ok" else f"{o}: model {model}: {error}" for o in outcomes],
            "attempts": [attempts] * n,
            "rate_limited": [0] * n,
            "cost_usd": [0.0] * n,
            "input_tokens": [0] * n,
            "output_tokens": [0] * n,
            "cached_input_tokens": [0] * n,
        }
    )


def test_retries_count_only_attempts_after_the_first() -> None:
    calls = StageCalls()
    calls.add(rows("a", ["auth"] * 8, attempts=0))  # no key: failed before any attempt
    assert (calls.made, calls.failed, calls.retries) == (8, 8, 0)
    calls.add(rows("a", ["ok"], attempts=3))
    calls.add(rows("a", ["server"], attempts=1))
    assert calls.retries == 2


def test_progress_counts_retries_alike() -> None:
    progress = Progress("s", {"a": 8}, {"a": 8}, live=False)
    progress.update(rows("a", ["auth"] * 7, attempts=0))
    progress.update(rows("a", ["ok"], attempts=4))
    assert progress.models["a"].retries == 3
