"""`specstress bench crash`: its arithmetic (fast), and `--quick` against the bounds of issue #16
("Nothing paid is lost"; slow, about 90 s on two cores, one bench run shared by the class)."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest

from jobs.bench.crash import kill_targets, repeats_by_kill, run_crash_bench


def test_repeat_answers_are_charged_to_the_kill_that_lost_them() -> None:
    after_each_session = [
        {"a": 1, "b": 1, "c": 1},
        {"a": 2, "b": 1, "c": 1, "d": 1},  # a lost by kill 1
        {"a": 3, "b": 2, "c": 1, "d": 2, "e": 2},  # a and d lost by kill 2, b by kill 1; e twice at once
    ]
    per_kill, within = repeats_by_kill(after_each_session)
    assert per_kill == [2, 2] and within == 1
    assert sum(per_kill) + within == sum(n - 1 for n in after_each_session[-1].values())


def test_kills_land_in_order_inside_the_stage_with_progress_between() -> None:
    targets = kill_targets(5, 8000, random.Random(3))
    assert targets[0] > 800 and targets[-1] < 7200  # 10%..90% of the stage
    assert all(b - a >= 639 for a, b in itertools.pairwise(targets))  # half a slot, rounded down


@pytest.fixture(scope="module")
def crash() -> dict[str, Any]:
    return run_crash_bench(quick=True)


@pytest.mark.slow
@pytest.mark.timeout(900)  # whichever test comes first runs the bench
class TestQuickBench:
    def test_every_request_has_exactly_one_stored_answer(self, crash: dict[str, Any]) -> None:
        w = crash["whole_run_killed"]
        assert (w["keys_missing"], w["rows_duplicated"]) == (0, 0)
        assert w["rows_per_key_ok"]

    def test_a_kill_repays_at_most_the_calls_on_the_wire(self, crash: dict[str, Any]) -> None:
        w = crash["whole_run_killed"]
        assert w["max_on_wire"] <= w["cap"]
        per_kill = [k["server_duplicates"] for k in w["per_kill"]]
        assert all(n <= w["cap"] for n in per_kill), f"paid twice per kill: {per_kill}"
        assert w["server_duplicates"] <= w["kills"] * w["cap"]

    def test_the_run_reports_at_least_what_was_paid_twice_and_no_more_than_was_on_the_wire(
        self, crash: dict[str, Any]
    ) -> None:
        w = crash["whole_run_killed"]
        assert w["server_duplicates"] <= w["reported"] <= w["kills"] * w["cap"]

    def test_what_is_reported_is_reported_under_the_stage_that_was_running(
        self, crash: dict[str, Any]
    ) -> None:
        w = crash["whole_run_killed"]
        assert set(w["reported_stages"]) <= {w["running_stage"]}

    def test_the_clients_of_a_dead_driver_send_nothing_after_a_second(self, crash: dict[str, Any]) -> None:
        d = crash["driver_killed"]
        assert d["requests_after_kill_1s"] == 0, (
            f"last request {d['last_arrival_after_kill_s']} s after the kill"
        )

    def test_nothing_of_a_dead_driver_runs_ten_seconds_later(self, crash: dict[str, Any]) -> None:
        d = crash["driver_killed"]
        assert d["processes_alive_after_10s"] == 0, d["alive_after_10s"]
