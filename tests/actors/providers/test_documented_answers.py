"""Adapters on the providers' documented answers: refusals, filters, cut answers, overloads, spend caps.

Each file in `fixtures/` is an answer as a provider's API reference documents it (see the
README there). Each is parsed as the client actor parses it and made into a store row; a
failure's kind then decides, through the retry policy, whether the client tries again.
Documented failures also go through the client's own retry loop, and, as items of a
provider batch, through the batch results reader.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple, cast

import pytest

from actors.client import base_row, failed_row, ok_row
from actors.errors import ProviderError
from actors.providers.base import get_adapter
from actors.providers.batch.anthropic import AnthropicBatchAPI
from actors.providers.batch.base import BatchHttp, ItemResult, RemoteBatch
from actors.providers.batch.gemini import GeminiBatchAPI
from actors.retry import RetryPolicy
from actors.types import Endpoint, Provider, chat, spec_to_json
from tests.actors.test_client import client_core
from tests.actors.test_retry import scripted

FIXTURES = Path(__file__).parent / "fixtures"
MODEL_IDS: dict[str, str] = {
    "openai": "gpt-4o",
    "anthropic": "claude-sonnet-4-5",
    "gemini": "gemini-2.5-flash",
}
SPEC = chat("m", "Should I tell my friend the truth?", max_tokens=256)


class Usage(NamedTuple):
    """A row's token columns, in store order."""

    input: int
    output: int
    cached_input: int = 0
    cache_write: int = 0
    reasoning: int = 0


USAGE_COLUMNS = (
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)


class Answered(NamedTuple):
    """A 2xx answer, stored as `ok` and never retried: what its row says."""

    finish_reason: str
    text: str
    usage: Usage
    refusal: bool = False
    flag: str | None = None
    thinking: str | None = None


class Failed(NamedTuple):
    """A failure, stored as `failed`: its kind, whether the client tries again, and the wait asked for."""

    kind: str
    retried: bool
    retry_after_s: float | None = None


EXPECTED: dict[str, Answered | Failed] = {
    "openai_stop": Answered("stop", "Hello! How can I assist you today?", Usage(19, 10)),
    "openai_refusal": Answered(
        "refusal", "I'm sorry, I cannot assist with that request.", Usage(81, 11), refusal=True
    ),
    "openai_length": Answered(
        "length",
        "The three main causes were, first, the",
        Usage(1200, 256, cached_input=1024, reasoning=192),
        flag="truncated",
    ),
    "openai_content_filter": Answered("content_filter", "", Usage(40, 0)),
    "openai_empty_content": Answered("stop", "", Usage(25, 1), flag="empty"),
    "openai_context_length_exceeded": Failed("client", retried=False),
    "openai_insufficient_quota": Failed("quota", retried=False),
    "openai_rate_limit": Failed("rate_limit", retried=True, retry_after_s=0.3),
    "openai_server_error": Failed("server", retried=True),
    "anthropic_end_turn": Answered("stop", "Hi! My name is Claude.", Usage(12 + 2048, 9, cache_write=2048)),
    "anthropic_thinking": Answered(
        "stop",
        "Tell them the truth, kindly.",
        Usage(120, 310),
        thinking="Both values matter here; honesty should win over comfort.",
    ),
    "anthropic_refusal": Answered("refusal", "", Usage(58, 0), refusal=True),
    "anthropic_max_tokens": Answered(
        "length", "There are three things to weigh. First,", Usage(33, 16), flag="truncated"
    ),
    "anthropic_context_window_exceeded": Answered(
        "length", "Continuing the summary of chapter twelve, the", Usage(195000, 5000), flag="truncated"
    ),
    "anthropic_empty_end_turn": Answered("stop", "", Usage(40, 3), flag="empty"),
    "anthropic_overloaded": Failed("overloaded", retried=True),
    "anthropic_prompt_too_long": Failed("client", retried=False),
    "anthropic_request_too_large": Failed("client", retried=False),
    "anthropic_spend_limit": Failed("quota", retried=False),
    "anthropic_billing_error": Failed("quota", retried=False),
    "anthropic_rate_limit": Failed("rate_limit", retried=True, retry_after_s=1.0),
    "gemini_stop": Answered("stop", "Honesty, delivered with care.", Usage(14, 6)),
    "gemini_safety_no_text": Answered("content_filter", "", Usage(22, 0), refusal=True),
    "gemini_recitation_no_text": Answered("content_filter", "", Usage(17, 0)),
    "gemini_prompt_blocked": Answered("content_filter", "", Usage(31, 0), refusal=True),
    "gemini_max_tokens": Answered(
        "length",
        "On balance, the fair choice is to",
        Usage(50, 8 + 120, cached_input=32, reasoning=120),
        flag="truncated",
        thinking="Weighing loyalty against fairness first.",
    ),
    "gemini_too_long": Failed("client", retried=False),
    "gemini_api_key_invalid": Failed("auth", retried=False),
    "gemini_resource_exhausted": Failed("rate_limit", retried=True, retry_after_s=1.0),
    "gemini_unavailable": Failed("overloaded", retried=True),
}
ANSWERED = sorted(name for name, want in EXPECTED.items() if isinstance(want, Answered))
FAILED = sorted(name for name, want in EXPECTED.items() if isinstance(want, Failed))
PLAIN_ANSWER = {"openai": "openai_stop", "anthropic": "anthropic_end_turn", "gemini": "gemini_stop"}
"""Each wire format's fixture of a plain answer: what a retry gets in the end-to-end test."""


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def provider_of(name: str) -> Provider:
    provider = name.split("_", 1)[0]
    assert provider in MODEL_IDS, name
    return cast(Provider, provider)


def endpoint(provider: Provider) -> Endpoint:
    return Endpoint("m", provider, MODEL_IDS[provider], "http://provider", "TEST_KEY", "acct")


def stored(name: str) -> tuple[dict[str, Any], ProviderError | None]:
    """The store row the client makes of a fixture's answer, and the error when it failed."""
    doc, provider = fixture(name), provider_of(name)
    ep = endpoint(provider)
    row = base_row(SPEC.key(ep), ep, SPEC.kind, "run")
    body = json.dumps(doc["body"]).encode()
    try:
        parsed = get_adapter(provider).parse(SPEC, doc["status"], doc.get("headers", {}), body)
    except ProviderError as err:
        return failed_row(row, err), err
    return ok_row(row, ep, parsed, latency_s=0.1), None


def test_every_fixture_names_its_source_and_has_an_expectation() -> None:
    names = {path.stem for path in FIXTURES.glob("*.json")}
    assert names == set(EXPECTED)
    for name in names:
        assert fixture(name)["_source"].startswith("https://"), name


@pytest.mark.parametrize("name", ANSWERED)
def test_a_documented_answer_is_stored_as_it_reads(name: str) -> None:
    want = EXPECTED[name]
    assert isinstance(want, Answered)
    row, err = stored(name)
    assert err is None and row["status"] == "ok"
    assert (row["finish_reason"], row["refusal"], row["flag"]) == (
        want.finish_reason,
        want.refusal,
        want.flag,
    )
    assert (row["text"], row["thinking"]) == (want.text, want.thinking)
    assert Usage(*(row[column] for column in USAGE_COLUMNS)) == want.usage


@pytest.mark.parametrize("name", FAILED)
def test_a_documented_failure_is_retried_only_when_waiting_can_help(name: str) -> None:
    want = EXPECTED[name]
    assert isinstance(want, Failed)
    row, err = stored(name)
    assert err is not None
    assert (row["status"], row["error_kind"], row["cost_usd"]) == ("failed", want.kind, 0.0)
    assert RetryPolicy().gives_up(err, 1) is not want.retried
    assert err.retry_after_s == want.retry_after_s
    body = fixture(name)["body"]
    assert body["error"]["message"][:100] in row["error"]  # the provider's own words, for the report
    assert json.loads(row["raw"]) == body  # kept whole


@pytest.mark.parametrize("name", FAILED)
async def test_the_client_loop_tries_again_only_when_waiting_can_help(name: str, tmp_path: Path) -> None:
    want = EXPECTED[name]
    assert isinstance(want, Failed)
    provider = provider_of(name)
    failure, plain = fixture(name), fixture(PLAIN_ANSWER[provider])
    replies = [(failure["status"], failure.get("headers", {}), failure["body"]), (200, {}, plain["body"])]
    async with scripted(replies) as (url, arrivals):
        base_url = f"{url}/v1" if provider == "openai" else url
        core = client_core(
            base_url,
            "sk-test",
            tmp_path,
            driver_lease_s=60.0,  # outlasts the waits: a 429 or 529 pauses the account 2 s unless told
            provider=provider,
            model_id=MODEL_IDS[provider],
            base_s=0.001,
            max_s=0.002,
        )
        (row,) = (await core.call_batch([("k", spec_to_json(SPEC))], "documented")).to_pylist()
        await core.close()
    if want.retried:
        assert (row["status"], row["attempts"], len(arrivals)) == ("ok", 2, 2)
        assert arrivals[1] - arrivals[0] >= (want.retry_after_s or 0.0)
    else:
        assert (row["status"], row["error_kind"], row["attempts"], len(arrivals)) == (
            "failed",
            want.kind,
            1,
            1,
        )
    # Only a wait-and-see answer slows the account; a spent quota or a bad request does not.
    assert row["rate_limited"] == int(want.kind in ("rate_limit", "overloaded"))


RPC_CODES = {"INVALID_ARGUMENT": 3, "RESOURCE_EXHAUSTED": 8, "UNAVAILABLE": 14}
"""The `google.rpc.Code` of each Gemini status among the fixtures: a batch item's error carries the number."""


class ResultsFile:
    """Stands in for `BatchHttp`: every request answers the same results file."""

    def __init__(self, lines: list[dict[str, Any]]) -> None:
        self.body = "\n".join(json.dumps(line) for line in lines).encode()

    async def request(self, method: str, url: str, **_: Any) -> bytes:
        return self.body


def results_file(*lines: dict[str, Any]) -> BatchHttp:
    return cast(BatchHttp, ResultsFile(list(lines)))


async def batch_item(name: str) -> ItemResult:
    """A fixture's error as its provider's batch reports a failed item, read by the batch API."""
    provider, body = provider_of(name), fixture(name)["body"]
    if provider == "anthropic":
        line = {"custom_id": "k", "result": {"type": "errored", "error": body}}
        batch = RemoteBatch("b", "ended", "ended", ref={"results_url": "http://provider/results"})
        (item,) = await AnthropicBatchAPI().results(results_file(line), endpoint(provider), batch)
        return item
    error = body["error"]  # online shape; in a batch it is a google.rpc.Status with the RPC code
    status = {
        "code": RPC_CODES[error["status"]],
        "message": error["message"],
        "details": error.get("details", []),
    }
    batch = RemoteBatch("b", "ended", "BATCH_STATE_SUCCEEDED", ref={"inlined": [{"error": status}]})
    (item,) = await GeminiBatchAPI().results(results_file(), endpoint(provider), batch)
    return item


@pytest.mark.parametrize("name", [name for name in FAILED if not name.startswith("openai_")])
async def test_a_batch_item_that_failed_alike_is_classified_alike(name: str) -> None:
    """OpenAI's result lines carry the HTTP status; Anthropic's carry the error type, Gemini's an RPC code."""
    want = EXPECTED[name]
    assert isinstance(want, Failed)
    item = await batch_item(name)
    with pytest.raises(ProviderError) as err:
        get_adapter(provider_of(name)).parse(SPEC, item.status, {}, item.body)
    assert (item.outcome, err.value.kind) == ("answered", want.kind)
