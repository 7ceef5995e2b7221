"""Settings of the `scenarios` stage: who generates and rewrites the queries, and how."""

from __future__ import annotations

from dataclasses import dataclass, field

from jobs.conf.batching import RoutingConf
from jobs.stages.settings.base import StageSpec


@dataclass
class ScenariosConf(RoutingConf):
    """Settings of the `scenarios` stage (config section `stages.scenarios`)."""

    generators: dict[str, float] = field(default_factory=dict)
    """Generator model keys with weights; each pair goes to one, drawn by its pair id."""
    rewriter: str | None = None
    """Model key that writes the biased rewrites; None means the pair's own generator."""
    max_tokens: int = 4000
    temperature: float | None = 1.0
    reasoning_effort: str | None = None
    """OpenAI reasoning models: low / medium / high."""
    thinking_budget: int | None = None
    """Anthropic extended thinking and Gemini thinking budget, in tokens."""
    restatement_threshold: float = 0.85
    """Similarity (0..1) at or above which a query counts as a restatement of the prompt."""
    biased: bool = True
    """Write the two value-biased rewrites of each kept neutral query."""


def _models(sc: ScenariosConf) -> dict[str, list[str]]:
    return {"generators": list(sc.generators), "rewriter": [sc.rewriter] if sc.rewriter else []}


STAGE_SPEC = StageSpec(
    name="scenarios",
    settings=ScenariosConf,
    reads=("pairs",),
    writes=("scenarios", "scenario_rejects"),
    models=_models,
)
