"""Settings of the `responses` stage: the sweep, its scope, and per-model generation settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from actors.errors import ConfigError
from jobs.conf.batching import RoutingConf
from jobs.paper.models import PAPER_MODELS
from jobs.stages.settings.answer_scope import check_scope, scope_reads
from jobs.stages.settings.base import ModelView, StageSpec


@dataclass
class ResponseSettings:
    """One model's overrides in `stages.responses.per_model`; None keeps the stage default."""

    system_prompt: str | None = None
    """System prompt; "" sends none."""
    temperature: float | None = None
    max_tokens: int | None = None
    """Output token cap, thinking included."""
    reasoning_effort: str | None = None
    """OpenAI reasoning models: low / medium / high."""
    thinking_budget: int | None = None
    """Anthropic extended thinking and Gemini thinking budget, in tokens."""
    samples: int | None = None
    """Answers per scenario from this model."""


@dataclass
class ResponsesConf(RoutingConf):
    """Settings of the `responses` stage (config section `stages.responses`)."""

    models: list[str] = field(default_factory=lambda: list(PAPER_MODELS))
    """The sweep: model keys that answer every scenario of the scope."""
    scope: str = "all"
    """diverse: the scenarios the diversity stage keeps (the paper's way; run embeddings and
    diversity first); all: every scenario."""
    samples: int = 1
    """Answers per scenario and model (the paper: one, at default settings)."""
    system_prompt: str | None = None
    """System prompt for every model; None (the paper's assumption) sends none."""
    temperature: float | None = None
    """None keeps the provider's default."""
    max_tokens: int | None = None
    """None keeps the registry's `params.max_tokens`."""
    reasoning_effort: str | None = None
    thinking_budget: int | None = None
    per_model: dict[str, ResponseSettings] = field(default_factory=dict)
    """Per-model overrides of the settings above, by model key."""
    chunk_rows: int = 20_000
    """Scenarios turned into requests (and result rows written) per chunk; bounds memory."""


def samples_of(rc: ResponsesConf, model: str) -> int:
    """Answers per scenario from `model`: its `per_model` override, else the stage's."""
    over = rc.per_model.get(model)
    return over.samples if over is not None and over.samples is not None else rc.samples


def check(rc: ResponsesConf, models: Mapping[str, ModelView]) -> None:
    if len(set(rc.models)) != len(rc.models):
        raise ConfigError(f"config key 'stages.responses.models': duplicate model keys in {rc.models}")
    stray = sorted(set(rc.per_model) - set(rc.models))
    if stray:
        raise ConfigError(f"config key 'stages.responses.per_model': keys {stray} are not in `models`")
    for model in rc.models:
        if samples_of(rc, model) < 1:
            raise ConfigError(f"config key 'stages.responses.samples' ({model}): must be >= 1")
    if rc.chunk_rows < 1:
        raise ConfigError("config key 'stages.responses.chunk_rows': must be >= 1")
    check_scope("responses", rc.scope)


STAGE_SPEC = StageSpec(
    name="responses",
    settings=ResponsesConf,
    reads=("scenarios",),
    writes=("responses",),
    models=lambda rc: {"models": list(rc.models)},
    check=check,
    reads_when=scope_reads,
)
