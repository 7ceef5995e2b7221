"""The stages' entry points by name, in pipeline order: what the driver runs and the estimate plans.

Adding a stage is a settings module under `settings/` that ends with its `StageSpec` (its
settings record and load-time checks) and one line in `STAGE_SPECS` (`settings/pipeline.py`),
and a module here that ends with its `Stage` (the spec with `run`, and `plan` or `preview`)
and one line in `STAGES`.
"""

from __future__ import annotations

from typing import Any

from jobs.stages import (
    compliance,
    disagreement,
    diversity,
    embeddings,
    pairs,
    refusals,
    responses,
    rubrics,
    scenarios,
    scores,
    topics,
    values,
)
from jobs.stages.base import Stage

STAGES: dict[str, Stage[Any]] = {
    s.spec.name: s
    for s in (
        pairs.STAGE,
        scenarios.STAGE,
        embeddings.STAGE,
        diversity.STAGE,
        responses.STAGE,
        rubrics.STAGE,
        scores.STAGE,
        disagreement.STAGE,
        topics.STAGE,
        refusals.STAGE,
        compliance.STAGE,
        values.STAGE,
    )
}
"""Stage name -> its `Stage`, in the order of `STAGE_SPECS` (a test holds the two together)."""
