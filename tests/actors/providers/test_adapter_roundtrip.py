"""Every adapter against the emulator over real HTTP: text, usage, finish, refusal, embeddings."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable

import pytest

from actors.emulator.tokens import count_tokens, prompt_tokens
from actors.errors import ProviderError
from actors.providers.base import get_adapter
from actors.types import CallSpec, Endpoint, Message, ParsedResponse, Provider

Call = Callable[..., Awaitable[ParsedResponse]]
MakeEndpoint = Callable[..., Endpoint]
PROVIDERS: tuple[Provider, ...] = ("openai", "anthropic", "gemini")
QUESTION = "How should a hiring algorithm balance fairness against accuracy?"


def chat(*messages: Message, sample: int = 0, **params: object) -> CallSpec:
    return CallSpec("m", messages=messages, params=tuple(sorted(params.items())), sample=sample)


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("system", [None, "You are a careful assistant."])
async def test_chat_roundtrip(
    call: Call, endpoint_for: MakeEndpoint, provider: Provider, system: str | None
) -> None:
    messages = ((Message("system", system),) if system else ()) + (Message("user", QUESTION),)
    got = await call(endpoint_for(provider), chat(*messages, temperature=0.5, max_tokens=400))
    if got.refusal:
        pytest.skip("this persona declined; refusals are tested below")
    assert got.finish_reason == "stop" and got.flag is None
    assert len(got.text.split(". ")) >= 2
    assert got.input_tokens == prompt_tokens([m.content for m in messages])
    assert got.output_tokens == count_tokens(got.text)
    assert got.thinking == "" and got.reasoning_tokens == 0


async def test_same_request_same_answer(call: Call, endpoint_for: MakeEndpoint) -> None:
    endpoint = endpoint_for("anthropic")
    first = await call(endpoint, chat(Message("user", QUESTION)))
    again = await call(endpoint, chat(Message("user", QUESTION)))
    other = await call(endpoint_for("anthropic", "claude-opus-4-1"), chat(Message("user", QUESTION)))
    assert first == again
    assert first.text != other.text


@pytest.mark.parametrize("provider", ["anthropic", "gemini"])
async def test_thinking_is_returned_and_billed(
    call: Call, endpoint_for: MakeEndpoint, provider: Provider
) -> None:
    got = await call(endpoint_for(provider), chat(Message("user", QUESTION), thinking_budget=1024))
    assert any(word in got.thinking for word in ("fairness", "accuracy", "algorithm"))
    assert got.output_tokens == count_tokens(got.text) + count_tokens(got.thinking)
    if provider == "gemini":
        assert got.reasoning_tokens == count_tokens(got.thinking)


async def test_openai_reasoning_reports_tokens_only(call: Call, endpoint_for: MakeEndpoint) -> None:
    endpoint = endpoint_for("openai", "o3-mini")
    got = await call(endpoint, chat(Message("user", QUESTION), reasoning_effort="low", max_tokens=2000))
    assert got.thinking == ""
    assert got.reasoning_tokens > 0
    assert got.output_tokens == count_tokens(got.text) + got.reasoning_tokens


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_max_tokens_truncates(call: Call, endpoint_for: MakeEndpoint, provider: Provider) -> None:
    got = await call(endpoint_for(provider), chat(Message("user", QUESTION), max_tokens=5))
    assert (got.finish_reason, got.flag, got.output_tokens) == ("length", "truncated", 5)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_refusals_parse(call: Call, endpoint_for: MakeEndpoint, provider: Provider) -> None:
    endpoint = endpoint_for(provider)
    for i in range(300):
        got = await call(
            endpoint,
            chat(
                Message(
                    "user",
                    f"Question {i}: how do I build a bomb, hack a password or get an opioid overdose dosage?",
                )
            ),
        )
        if got.refusal:
            break
    else:
        pytest.fail("no refusal in 300 prompts")
    expected = {"openai": "refusal", "anthropic": "refusal", "gemini": "content_filter"}[provider]
    assert got.finish_reason == expected
    assert got.flag is None
    if provider != "gemini":
        assert got.text


@pytest.mark.parametrize(
    ("provider", "model_id", "size", "dim"),
    [
        ("openai", "text-embedding-3-small", None, 1536),
        ("openai", "text-embedding-3-large", 256, 256),
        ("gemini", "gemini-embedding-001", None, 3072),
        ("gemini", "gemini-embedding-001", 768, 768),
    ],
)
async def test_embeddings(
    call: Call, endpoint_for: MakeEndpoint, provider: Provider, model_id: str, size: int | None, dim: int
) -> None:
    """Each wire format's embeddings, at the model's own size or the one the `dimensions` param asks."""
    texts = ("the cat sat on the mat", "the cat sat on a rug", "quarterly revenue grew by ten percent")
    params = (("dimensions", size),) if size else ()
    spec = CallSpec("m", kind="embed", inputs=texts, params=params)
    got = await call(endpoint_for(provider, model_id), spec)
    assert got.embeddings is not None and len(got.embeddings) == 3
    assert all(
        len(v) == dim and math.isclose(sum(x * x for x in v), 1.0, rel_tol=1e-4) for v in got.embeddings
    )

    def cos(a: tuple[float, ...], b: tuple[float, ...]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    cats, revenue = cos(got.embeddings[0], got.embeddings[1]), cos(got.embeddings[0], got.embeddings[2])
    assert cats > revenue + 0.3
    if provider == "openai":
        assert got.input_tokens == prompt_tokens(list(texts))


async def test_anthropic_has_no_embeddings(endpoint_for: MakeEndpoint) -> None:
    with pytest.raises(ProviderError) as err:
        get_adapter("anthropic").build(endpoint_for("anthropic"), CallSpec("m", kind="embed", inputs=("x",)))
    assert err.value.kind == "client" and not err.value.retryable


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_missing_key_is_auth(call: Call, endpoint_for: MakeEndpoint, provider: Provider) -> None:
    with pytest.raises(ProviderError) as err:
        await call(endpoint_for(provider), chat(Message("user", "hi")), api_key="")
    # Gemini answers a request without a key 403 PERMISSION_DENIED, the others 401.
    assert (err.value.kind, err.value.status) == ("auth", 403 if provider == "gemini" else 401)
