"""Every calling stage's plan is what its run sends, and the estimate's exact lines are that plan.

Checked on the release fixture run resumed under the current code (`tests/release_run.py`):
after it, every input table exists, so every stage can plan, and its requests tables hold
what the run sent.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from actors.store import CallStore
from jobs.context import stage_context
from jobs.engine.rundir import RunDir, default_cache
from jobs.estimate.estimate import line_name, planned_lines
from jobs.estimate.requests import exact_lines, first_round_tables, from_earlier_requests
from jobs.stages.base import no_plan
from jobs.stages.registry import STAGES
from jobs.stages.settings.pipeline import STAGE_SPECS
from tests.release_run import ResumedRun

CALLING = [
    "scenarios",
    "embeddings",
    "responses",
    "rubrics",
    "scores",
    "topics",
    "refusals",
    "compliance",
    "values",
]


def test_the_calling_stages_are_the_ones_that_plan() -> None:
    assert [name for name, s in STAGES.items() if s.plan is not no_plan] == CALLING


def test_the_registry_holds_every_spec_in_pipeline_order() -> None:
    assert [s.spec for s in STAGES.values()] == list(STAGE_SPECS)


@pytest.mark.parametrize("name", CALLING)
def test_a_stages_plan_is_what_its_run_wrote(release_run: ResumedRun, name: str) -> None:
    run = RunDir.open(str(release_run.run_dir))
    plan = STAGES[name].plan(stage_context(release_run.conf, name, run))
    written = {p.rsplit("/", 1)[-1].removesuffix(".parquet") for p in first_round_tables(run, name)}
    # The biased rewrites need the neutral answers, and a fully cached embedding sends nothing.
    unplannable = {"scenarios": {"scenarios_biased"}}.get(name, set())
    assert set(plan) | unplannable >= written and set(plan) <= written | {"embeddings"}, (set(plan), written)
    for table, chunks in plan.items():
        built = [c for c in chunks if c.height]
        if table not in written:
            assert not built, f"{table}: planned calls the run never wrote"
            continue
        stored = pl.read_parquet(run.requests.join(f"{table}.parquet"))
        frame = pl.concat(built)
        assert_frame_equal(stored.select(frame.columns), frame, check_dtypes=False)


@pytest.mark.parametrize("name", CALLING)
def test_the_estimates_exact_lines_are_the_plan(release_run: ResumedRun, name: str) -> None:
    conf, run = release_run.conf, RunDir.open(str(release_run.run_dir))
    answered = CallStore(default_cache(conf.run_dir)).answered_keys()
    half = np.unique(np.sort(answered)[::2])  # some calls still to make, so `cached` is tested too
    plan = STAGES[name].plan(stage_context(conf, name, run))
    by_line: dict[str, list[pl.DataFrame]] = {}
    for table, chunks in plan.items():
        by_line.setdefault(line_name(table), []).extend(chunks)
    for line, chunks in by_line.items():
        from_plan = exact_lines(conf, line, chunks, half)
        written = from_earlier_requests(conf, run, line, half) or []
        assert from_plan == written, line
        assert all(ln.exact for ln in from_plan)
    # After a whole run every stage can plan, and the estimate prices exactly those lines.
    planned = planned_lines(conf, run, answered)
    for line in by_line:
        assert planned.get(line, []) == (from_earlier_requests(conf, run, line, answered) or []), line
        assert all(ln.to_make == 0 for ln in planned.get(line, []))
