"""The official `anthropic` client against the emulator: messages, caching, thinking, batches, errors.

The SDK is the witness of Anthropic's wire format: every answer must parse into its typed
objects with the fields specstress reads, and every error must surface as its own error
type with the headers readable. SDKs are test-only dependencies; product code never
imports them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime

import anthropic
import pytest
from anthropic.types import Message, TextBlock, ThinkingBlock
from anthropic.types.messages import MessageBatch, MessageBatchIndividualResponse

from actors.emulator.config import AccountLimits, BatchBehaviour, FaultRates
from actors.emulator.server import EmulatorServer

StartEmulator = Callable[..., EmulatorServer]
Connect = Callable[..., anthropic.Anthropic]
KEY = "test-key"
MODEL = "claude-sonnet-4-5"
LONG = " ".join(f"rule{i} applies." for i in range(700))  # about 3,500 tokens: past the cache minimum
HI = [{"role": "user", "content": "Is tact a kind of honesty?"}]


@pytest.fixture
def connect(start_emulator: StartEmulator) -> Iterator[Connect]:
    """`connect(**emulator_config)`: a client on a fresh emulator, closed after the test.

    It never retries, so every error surfaces as the SDK raises it.
    """
    with ExitStack() as stack:

        def start(**fields: object) -> anthropic.Anthropic:
            emu = start_emulator(**fields)
            return stack.enter_context(anthropic.Anthropic(api_key=KEY, base_url=emu.url, max_retries=0))

        yield start


def test_system_blocks_with_cache_control_write_then_read(connect: Connect) -> None:
    sdk = connect()
    system: list[anthropic.types.TextBlockParam] = [
        {"type": "text", "text": LONG, "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "Answer in one paragraph."},
    ]
    first = sdk.messages.create(model=MODEL, max_tokens=256, system=system, messages=HI)
    second = sdk.messages.create(model=MODEL, max_tokens=256, system=system, messages=HI)
    for answer in (first, second):
        assert isinstance(answer, Message) and answer.role == "assistant"
        assert answer.stop_reason == "end_turn" and answer.stop_sequence is None
        assert [type(block) for block in answer.content] == [TextBlock]
        assert answer.usage.output_tokens > 0
    written = first.usage.cache_creation_input_tokens or 0
    assert written > 3_000 and not first.usage.cache_read_input_tokens
    assert second.usage.cache_read_input_tokens == written and not second.usage.cache_creation_input_tokens
    assert second.usage.input_tokens == first.usage.input_tokens, "cached tokens are billed apart"


def test_extended_thinking_and_max_tokens_stop(connect: Connect) -> None:
    sdk = connect()
    thought = sdk.messages.create(
        model=MODEL, max_tokens=2048, thinking={"type": "enabled", "budget_tokens": 1024}, messages=HI
    )
    thinking, text = thought.content
    assert isinstance(thinking, ThinkingBlock) and thinking.thinking and thinking.signature
    assert isinstance(text, TextBlock) and text.text and thought.stop_reason == "end_turn"
    cut = sdk.messages.create(model=MODEL, max_tokens=5, messages=HI)
    assert cut.stop_reason == "max_tokens" and cut.usage.output_tokens <= 5


def test_refusals_stop_with_refusal(connect: Connect) -> None:
    """Emulated claude-opus-4 declines some weapons questions, with stop reason `refusal`."""
    sdk = connect()
    answers = [
        sdk.messages.create(
            model="claude-opus-4-1",
            max_tokens=256,
            messages=[{"role": "user", "content": f"Case {i}: how is a bomb built?"}],
        )
        for i in range(12)
    ]
    stops = {a.stop_reason for a in answers}
    assert stops == {"end_turn", "refusal"}


def test_rate_limit_is_the_sdks_429_with_headers(connect: Connect) -> None:
    sdk = connect(accounts={KEY: AccountLimits(rpm=1, input_tpm=100_000)})
    ok = sdk.messages.with_raw_response.create(model=MODEL, max_tokens=64, messages=HI)
    assert ok.headers["anthropic-ratelimit-requests-limit"] == "1"
    assert ok.headers["anthropic-ratelimit-input-tokens-limit"] == "100000"
    reset = datetime.fromisoformat(ok.headers["anthropic-ratelimit-requests-reset"])
    assert -1 <= (reset - datetime.now(UTC)).total_seconds() <= 61, "RFC 3339, within the minute"
    with pytest.raises(anthropic.RateLimitError) as caught:
        sdk.messages.create(model=MODEL, max_tokens=64, messages=HI)
    err = caught.value
    assert err.status_code == 429 and err.type == "rate_limit_error" and err.api_message
    assert int(err.response.headers["retry-after"]) >= 1
    assert err.response.headers["anthropic-ratelimit-requests-remaining"] == "0"


@pytest.mark.parametrize(
    ("faults", "error_type", "kind"),
    [
        (FaultRates(server_500=1.0), anthropic.InternalServerError, "api_error"),
        (FaultRates(overloaded_529=1.0), anthropic.OverloadedError, "overloaded_error"),
    ],
)
def test_server_faults_are_the_sdks_errors(
    connect: Connect, faults: FaultRates, error_type: type[anthropic.APIStatusError], kind: str
) -> None:
    sdk = connect(faults=faults)
    with pytest.raises(error_type) as caught:
        sdk.messages.create(model=MODEL, max_tokens=64, messages=HI)
    assert caught.value.type == kind


def test_bad_request_and_bad_key_are_the_sdks_errors(connect: Connect) -> None:
    sdk = connect()
    with pytest.raises(anthropic.BadRequestError) as caught:
        sdk.messages.create(
            model=MODEL, max_tokens=512, thinking={"type": "enabled", "budget_tokens": 1024}, messages=HI
        )
    assert caught.value.type == "invalid_request_error" and "budget_tokens" in str(caught.value.api_message)
    with pytest.raises(anthropic.AuthenticationError) as denied:
        sdk.messages.create(
            model=MODEL, max_tokens=64, messages=HI, extra_headers={"Authorization": "Basic dGVzdA=="}
        )
    assert denied.value.type == "authentication_error"


def _requests(n: int) -> list[anthropic.types.messages.batch_create_params.Request]:
    return [
        {
            "custom_id": f"q{i}",
            "params": {
                "model": MODEL,
                "max_tokens": 128,
                "messages": [{"role": "user", "content": f"Question {i}: is tact honest?"}],
            },
        }
        for i in range(n)
    ]


def test_message_batch_succeeds_and_results_parse(connect: Connect) -> None:
    sdk = connect(batch=BatchBehaviour(delay_s=0.0))
    created = sdk.messages.batches.create(requests=_requests(3))
    assert isinstance(created, MessageBatch) and created.processing_status == "in_progress"
    assert created.results_url is None and created.expires_at > created.created_at
    ended = sdk.messages.batches.retrieve(created.id)
    assert ended.processing_status == "ended" and ended.ended_at and ended.results_url
    assert ended.request_counts.succeeded == 3 and ended.request_counts.processing == 0
    results = list(sdk.messages.batches.results(created.id))
    assert sorted(r.custom_id for r in results) == ["q0", "q1", "q2"]
    for row in results:
        assert isinstance(row, MessageBatchIndividualResponse) and row.result.type == "succeeded"
        assert isinstance(row.result.message, Message) and row.result.message.stop_reason == "end_turn"


def test_message_batch_errors_and_cancels(connect: Connect) -> None:
    failing = connect(batch=BatchBehaviour(delay_s=0.0, failure_rate=1.0))
    batch = failing.messages.batches.create(requests=_requests(2))
    errored = list(failing.messages.batches.results(batch.id))
    assert {r.result.type for r in errored} == {"errored"}
    for row in errored:
        assert row.result.type == "errored" and row.result.error.error.type == "api_error"

    slow = connect(batch=BatchBehaviour(delay_s=600.0))
    batch = slow.messages.batches.create(requests=_requests(2))
    cancelling = slow.messages.batches.cancel(batch.id)
    assert cancelling.processing_status == "canceling" and cancelling.cancel_initiated_at
    ended = slow.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended" and ended.request_counts.canceled == 2
    assert {r.result.type for r in slow.messages.batches.results(batch.id)} == {"canceled"}
