"""`specstress bench estimate` on a small table: it runs, and both readings agree."""

from __future__ import annotations

from jobs.bench.estimate import run_estimate_bench


def test_bench_estimate_reports_equal_lines_and_half_answered() -> None:
    out = run_estimate_bench(rows=600)
    assert out["lines_equal"] is True
    assert out["answered"] == out["calls_to_make"] == 300
    assert out["estimate_usd"] > 0 and out["columns_seconds"] > 0 and out["rehash_seconds"] > 0
    assert 0 < out["columns_peak_rss_mb"] < 4096
