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
class CommitteeConf:
    """Committee mode (`stages.responses.committee`): a few models answer every scenario, the rest
    only where the committee disagrees (`jobs/stages/committee.py`). No models: off."""

    models: list[str] = field(default_factory=list)
    """The committee: model keys of the sweep (at least two, not all of it) that answer every scenario."""
    calibration_share: float = 0.05
    """Share of the scenarios (a draw seeded by scenario id) every model answers regardless: the
    sample the threshold is chosen on and the recall measured on."""
    target_recall: float = 0.9
    """Share of the high-disagreement scenarios (D over every scored model >= the disagreement
    stage's high_threshold) the threshold must send on to every model, on the calibration sample."""
    expected_share: float = 0.5
    """For `specstress estimate` before calibration has run: the share of the other scenarios
    expected to go to every model (a planning guess, marked ~; afterwards the run's own share)."""


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
    committee: CommitteeConf = field(default_factory=CommitteeConf)
    """Committee mode; off unless `committee.models` is set."""


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
    check_committee(rc)


def check_committee(rc: ResponsesConf) -> None:
    """A committee is two or more models of the sweep, not all of it, each answering once."""
    cc, key = rc.committee, "config key 'stages.responses.committee"
    if not cc.models:
        return
    stray = sorted(set(cc.models) - set(rc.models))
    if stray:
        raise ConfigError(f"{key}.models': {stray} are not in stages.responses.models")
    if len(set(cc.models)) < 2 or len(set(cc.models)) >= len(set(rc.models)):
        raise ConfigError(
            f"{key}.models': needs at least two models and fewer than the sweep's {len(rc.models)}, "
            f"got {cc.models}"
        )
    if not 0 < cc.calibration_share <= 1:
        raise ConfigError(f"{key}.calibration_share': must be in (0, 1], got {cc.calibration_share}")
    if not 0 < cc.target_recall <= 1:
        raise ConfigError(f"{key}.target_recall': must be in (0, 1], got {cc.target_recall}")
    if not 0 <= cc.expected_share <= 1:
        raise ConfigError(f"{key}.expected_share': must be in [0, 1], got {cc.expected_share}")
    several = [m for m in rc.models if samples_of(rc, m) != 1]
    if several:
        raise ConfigError(f"{key}': committee mode compares one answer per model; {several} take samples > 1")


def reads(rc: ResponsesConf) -> dict[str, str]:
    """The scope's tables, and in committee mode the rubrics its scoring reads."""
    return scope_reads(rc) | ({"rubrics": "committee"} if rc.committee.models else {})


def consults(rc: ResponsesConf) -> tuple[str, ...]:
    """In committee mode the committee is scored as the scores stage scores, and its D taken as the
    disagreement stage takes it."""
    return ("scores", "disagreement") if rc.committee.models else ()


STAGE_SPEC = StageSpec(
    name="responses",
    settings=ResponsesConf,
    reads=("scenarios",),
    writes=("responses",),
    models=lambda rc: {"models": list(rc.models), "committee.models": list(rc.committee.models)},
    check=check,
    reads_when=reads,
    consults=consults,
)
