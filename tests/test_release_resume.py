"""A run directory written by release 0.1.0 resumes under the current code with zero calls.

Call keys, requests and each stage's choice of what to send must not drift between
releases: a user who upgrades mid-run would pay again for every call whose key changed.
"""

from __future__ import annotations

from typing import Any

from tests.release_run import ResumedRun, stored_calls


def calls_made(summary: Any, where: str = "") -> dict[str, int]:
    """Every engine figure `made` in a stage summary (nested per requests table), by where it sits."""
    if not isinstance(summary, dict):
        return {}
    found = {where: summary["made"]} if isinstance(summary.get("made"), int) else {}
    for key, value in summary.items():
        found.update(calls_made(value, f"{where}.{key}"))
    return found


def test_a_release_0_1_0_run_resumes_with_zero_calls(release_run: ResumedRun) -> None:
    summaries = release_run.summaries
    assert list(summaries) == list(release_run.conf.pipeline)  # every stage ran, none was skipped
    figures = {name: calls_made(summary) for name, summary in summaries.items()}
    assert all(figures[s] for s in ("scenarios", "responses", "scores", "compliance"))  # the engine ran
    paid_again = {f"{name}{where}": n for name, found in figures.items() for where, n in found.items() if n}
    assert paid_again == {}, f"calls paid again under the current code: {paid_again}"
    assert stored_calls(release_run.run_dir) == release_run.stored_before == 320
    assert summaries["responses"]["responses"] == 132
    assert summaries["compliance"]["judgements"] > 0
