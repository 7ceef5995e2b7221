"""Generation parameters of a stage's calls: registry defaults, then the stage's settings."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jobs.stages.base import StageContext
from jobs.stages.settings.base import ModelView


def layer(
    params: dict[str, Any],
    provider: str,
    *,
    temperature: float | None = None,
    max_tokens: int | None = None,
    reasoning_effort: str | None = None,
    thinking_budget: int | None = None,
) -> dict[str, Any]:
    """Apply the settings that are set, keeping only those the provider understands (in place)."""
    if temperature is not None:
        params["temperature"] = temperature
    if max_tokens is not None:
        params["max_tokens"] = max_tokens
    if reasoning_effort and provider == "openai":
        params["reasoning_effort"] = reasoning_effort
    if thinking_budget and provider in ("anthropic", "gemini"):
        params["thinking_budget"] = thinking_budget
    return params


def stage_params(m: ModelView, settings: Any) -> dict[str, Any]:
    """The model's registry params with a stage's temperature, max_tokens and reasoning settings on top."""
    return layer(
        dict(m.params),
        m.provider,
        temperature=settings.temperature,
        max_tokens=settings.max_tokens,
        reasoning_effort=settings.reasoning_effort,
        thinking_budget=settings.thinking_budget,
    )


def params_by_model(ctx: StageContext[Any]) -> Callable[[str], dict[str, Any]]:
    """Model key -> `stage_params` of that model under the context's settings (what repair calls take)."""
    return lambda m: stage_params(ctx.model(m), ctx.settings)
