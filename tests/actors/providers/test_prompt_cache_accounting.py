"""Cached prompt tokens per provider format, parsed by the adapters and billed at the cached price."""

from __future__ import annotations

import pytest

from actors.types import CallSpec, Message, Prices, Provider
from jobs.stages.compliance import JUDGE_PROMPT, SPEC_SYSTEM
from jobs.stages.compliance_scope import DEMO_SPEC
from tests.actors.providers.conftest import Call, MakeEndpoint

PRICES = Prices(input=3.0, output=15.0, cached_input=0.3, cache_write=3.75)
SYSTEM = SPEC_SYSTEM.format(spec=DEMO_SPEC.read_text())


def judge_call(query: str) -> CallSpec:
    """A compliance judge call as the stage builds it: the spec as a marked system prefix."""
    prompt = JUDGE_PROMPT.format(query=query, response="I would balance both equally here.")
    return CallSpec(
        "m",
        messages=(Message("system", SYSTEM), Message("user", prompt)),
        params=(("cache_prefix", True), ("max_tokens", 300)),
    )


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
async def test_second_judge_call_reads_the_spec_from_the_cache(
    call: Call, endpoint_for: MakeEndpoint, provider: Provider
) -> None:
    endpoint = endpoint_for(provider, f"judge-cache-{provider}")
    first = await call(endpoint, judge_call("First question?"))
    second = await call(endpoint, judge_call("A different second question?"))
    assert first.cached_input_tokens == 0
    assert second.cached_input_tokens >= 1024 and second.cached_input_tokens < second.input_tokens
    if provider == "anthropic":
        # Written on first use (billed apart), read afterwards; input_tokens counts every prompt token.
        assert first.cache_write_tokens == second.cached_input_tokens and second.cache_write_tokens == 0
    else:
        assert first.cache_write_tokens == second.cache_write_tokens == 0
        assert second.cached_input_tokens % 128 == 0
    plain = PRICES.cost_usd(second.input_tokens, second.output_tokens)
    billed = PRICES.cost_usd(second.input_tokens, second.output_tokens, second.cached_input_tokens)
    saved = second.cached_input_tokens * (PRICES.input - PRICES.cached_input) / 1e6
    assert billed == pytest.approx(plain - saved) and billed < plain
