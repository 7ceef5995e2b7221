"""The run's time at the limits: stages in turn, overlapped through one limiter per account, and the bound."""

from __future__ import annotations

import math

import pytest

from jobs.conf.schema import LimitsConf
from jobs.config import load_config
from jobs.estimate.lines import Line
from jobs.estimate.schedule import fair_rates, overlapped, schedule, stage_inputs
from tests.jobs.conf.test_config import DEMO

# One account: 1 request/s, 1 output token/s, input unlimited.
LIMITS = {"acct": LimitsConf(rpm=60, input_tpm=None, output_tpm=60)}
ACCOUNT = {"by_requests": "acct", "by_output": "acct"}


def test_fair_rates_give_the_requests_a_token_bound_stage_cannot_use_to_the_other() -> None:
    rates = fair_rates((1.0, math.inf, 1.0), {"a": (1.0, 0.0, 0.0), "b": (1.0, 0.0, 10.0)})
    assert rates == pytest.approx({"a": 0.9, "b": 0.1})  # b is held by output tokens, a takes the rest
    assert fair_rates((1.0, math.inf, 1.0), {"a": (1.0, 0.0, 0.0), "c": (1.0, 0.0, 0.0)}) == pytest.approx(
        {"a": 0.5, "c": 0.5}
    )
    assert fair_rates((math.inf, math.inf, math.inf), {"a": (1.0, 5.0, 5.0)}) == {"a": math.inf}


def test_two_stages_bound_by_different_limits_overlap_to_the_bound() -> None:
    # a: 100 calls, no output (100 s alone); b: 10 calls of 10 output tokens (100 s alone).
    lines = [
        Line("topics", "by_requests", 100, output_tokens=0.0),
        Line("compliance", "by_output", 10, output_tokens=100.0),
    ]
    inputs = {"topics": set(), "compliance": set()}
    sch = schedule(lines, ACCOUNT, LIMITS, set(), inputs)
    assert sch.sequential_s == pytest.approx(200.0)
    # Together: b at 0.1 call/s for 100 s while a takes 0.9/s (90 calls), then a's last 10 alone.
    assert sch.overlapped_s == pytest.approx(110.0)
    assert (sch.lower_bound_s, sch.bound_by) == (pytest.approx(110.0), "account acct")
    assert sch.overlap_saving == pytest.approx(0.45)


def test_a_stage_waits_for_the_stages_whose_tables_it_reads() -> None:
    lines = [Line("topics", "by_requests", 100), Line("compliance", "by_output", 10, output_tokens=100.0)]
    chained = {"topics": set(), "compliance": {"topics"}}
    sch = schedule(lines, ACCOUNT, LIMITS, set(), chained)
    assert sch.overlapped_s == pytest.approx(sch.sequential_s) == pytest.approx(200.0)
    assert (sch.lower_bound_s, sch.bound_by) == (pytest.approx(200.0), "the chain of stages")


def test_batch_routed_lines_use_the_accounts_batch_queue_not_its_online_limits() -> None:
    lines = [Line("topics", "by_requests", 100), Line("compliance", "by_requests", 100)]
    inputs = {"topics": set(), "compliance": set()}
    online = schedule(lines, ACCOUNT, LIMITS, set(), inputs)
    batched = schedule(lines, ACCOUNT, LIMITS, {("compliance", "by_requests")}, inputs)
    assert online.overlapped_s == pytest.approx(200.0)  # one request limit, split
    assert batched.overlapped_s == pytest.approx(100.0)  # each on its own queue
    assert batched.bound_by == "account acct"  # ties with "acct batch queue": both 100 s


def test_stages_that_wait_on_each_other_are_an_error_not_a_hang() -> None:
    with pytest.raises(ValueError, match="wait on each other"):
        overlapped({}, {}, {"a": {"b"}, "b": {"a"}})


def test_the_demo_pipelines_stages_wait_for_what_they_read() -> None:
    conf = load_config(DEMO)
    inputs = stage_inputs(conf.stages, conf.pipeline)
    assert inputs["scenarios_biased"] == {"scenarios_neutral"}
    assert inputs["responses"] == inputs["rubrics"] == {"diversity", "scenarios_biased"}  # side by side
    assert inputs["refusals"] >= {"topics", "responses"}
    assert "topics" not in inputs["compliance"] and inputs["values_embeddings"] == {"values"}


def test_an_account_without_limits_takes_no_time() -> None:
    free = {"acct": LimitsConf(rpm=None, input_tpm=None, output_tpm=None)}
    lines = [Line("topics", "by_requests", 100), Line("compliance", "by_output", 10, output_tokens=100.0)]
    sch = schedule(lines, ACCOUNT, free, set(), {"topics": set(), "compliance": {"topics"}})
    assert (sch.sequential_s, sch.overlapped_s, sch.lower_bound_s) == (0.0, 0.0, 0.0)
