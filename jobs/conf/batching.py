"""Config of batch routing: the per-stage mode and deadline, and the batch APIs' limits.

`RoutingConf` is mixed into each calling stage's schema, so `stages.responses.route=batch`
works like any other stage key (`route`, because `stages.scores.mode` already names the
scoring mode); `BatchConf` is the run's `batch:` section.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from actors.errors import ConfigError

MODES = ("online", "batch", "auto")
BATCH_PROVIDERS = ("openai", "anthropic", "gemini")
"""The wire formats with a batch API (`actors.providers.batch`, which a test holds to this list),
named here so that checking a config loads no adapter."""


@dataclass
class RoutingConf:
    """How a stage's calls travel (see README, "Batch APIs")."""

    route: str = "online"
    """online: every call at once, full price. batch: through the providers' batch APIs at the
    batch price, waiting as long as they take (up to their 24 h window). auto: batch while
    `batch_deadline_s` allows, then the stragglers online."""
    batch_deadline_s: float = 86_400.0
    """auto: seconds from the stage's first batch submission by which every call must be answered."""


@dataclass
class BatchProviderConf:
    """Limits of one provider's batch API; None keeps the documented default (README)."""

    max_requests: int | None = None
    """Requests per batch."""
    max_bytes: int | None = None
    """Bytes of request bodies per batch."""
    max_in_flight: int | None = None
    """Batches open at once per model."""


@dataclass
class BatchConf:
    """The run's `batch:` section: polling, repair rounds, the auto cut-over, per-provider limits."""

    poll_s: float = 60.0
    """Seconds between polls of open batches."""
    max_rounds: int = 2
    """batch mode: times an item may be submitted in a batch (failed and expired items are
    re-submitted, exactly those) before it goes online."""
    online_safety: float = 1.5
    """auto: the cut-over comes when the time left is this many times what the rate limits need
    to make the outstanding calls online."""
    cancel_grace_s: float = 300.0
    """auto: seconds a cancelled batch may take to end (its finished items are collected)."""
    providers: dict[str, BatchProviderConf] = field(default_factory=dict)
    """Per-provider limits: openai, anthropic, gemini."""


def routing_for(stages: Any, stage: str) -> RoutingConf:
    """The routing of a requests table (`scenarios_neutral` -> stages.scenarios); online by default."""
    section = getattr(stages, stage.split("_", 1)[0], None)
    return section if isinstance(section, RoutingConf) else RoutingConf()


def check_batching(conf: Any) -> None:
    """Semantic checks of `batch:` and of every stage's mode; raises `ConfigError` naming the key."""

    def check(cond: bool, key: str, problem: str) -> None:
        if not cond:
            raise ConfigError(f"config key '{key}': {problem}")

    b: BatchConf = conf.batch
    check(b.poll_s > 0, "batch.poll_s", f"must be > 0, got {b.poll_s}")
    check(b.max_rounds >= 1, "batch.max_rounds", f"must be >= 1, got {b.max_rounds}")
    check(b.online_safety >= 1, "batch.online_safety", f"must be >= 1, got {b.online_safety}")
    check(b.cancel_grace_s >= 0, "batch.cancel_grace_s", f"must be >= 0, got {b.cancel_grace_s}")
    for provider, lim in b.providers.items():
        check(
            provider in BATCH_PROVIDERS,
            f"batch.providers.{provider}",
            f"unknown provider; batch APIs exist for {', '.join(BATCH_PROVIDERS)}",
        )
        for name, value in vars(lim).items():
            check(
                value is None or value >= 1,
                f"batch.providers.{provider}.{name}",
                f"must be >= 1, got {value}",
            )
    for name in vars(conf.stages):
        section = getattr(conf.stages, name)
        if isinstance(section, RoutingConf):
            check(
                section.route in MODES,
                f"stages.{name}.route",
                f"must be one of {MODES}, got '{section.route}'",
            )
            check(
                section.batch_deadline_s > 0,
                f"stages.{name}.batch_deadline_s",
                f"must be > 0, got {section.batch_deadline_s}",
            )
