"""The official `openai` client against the emulator: chat, embeddings, files, batches, errors.

The SDK is the witness of OpenAI's wire format: every answer must parse into its typed
objects with the fields specstress reads, and every error must surface as its own error
type with the headers readable. SDKs are test-only dependencies; product code never
imports them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack

import openai
import pytest
from openai.types import Batch, CreateEmbeddingResponse, FileObject
from openai.types.chat import ChatCompletion

from actors.emulator.config import AccountLimits, BatchBehaviour, FaultRates
from actors.emulator.server import EmulatorServer

StartEmulator = Callable[..., EmulatorServer]
KEY = "test-key"
LONG = " ".join(f"rule{i} applies." for i in range(700))  # about 3,500 tokens: past the cache minimum


Connect = Callable[..., openai.OpenAI]


@pytest.fixture
def connect(start_emulator: StartEmulator) -> Iterator[Connect]:
    """`connect(**emulator_config)`: a client on a fresh emulator, closed after the test.

    It never retries, so every error surfaces as the SDK raises it.
    """
    with ExitStack() as stack:

        def start(**fields: object) -> openai.OpenAI:
            emu = start_emulator(**fields)
            return stack.enter_context(openai.OpenAI(api_key=KEY, base_url=emu.url + "/v1", max_retries=0))

        yield start


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]


def test_chat_completion_parses_with_usage_and_cached_tokens(connect: Connect) -> None:
    sdk = connect()
    first = sdk.chat.completions.create(model="gpt-4.1-mini", messages=ask(LONG + " First?"))
    second = sdk.chat.completions.create(model="gpt-4.1-mini", messages=ask(LONG + " Second?"))
    for answer in (first, second):
        assert isinstance(answer, ChatCompletion)
        choice = answer.choices[0]
        assert choice.finish_reason == "stop" and choice.message.role == "assistant"
        assert choice.message.content and choice.message.refusal is None
        assert answer.usage is not None and answer.usage.prompt_tokens > 3_000
        assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens
    assert first.usage and first.usage.prompt_tokens_details
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    assert second.usage and second.usage.prompt_tokens_details
    cached = second.usage.prompt_tokens_details.cached_tokens or 0
    assert cached >= 1024 and cached % 128 == 0, "the shared prefix is read in 128-token blocks"


def test_reasoning_tokens_and_length_stop(connect: Connect) -> None:
    sdk = connect()
    reasoned = sdk.chat.completions.create(model="o4-mini", messages=ask("Is tact a kind of honesty?"))
    assert reasoned.usage and reasoned.usage.completion_tokens_details
    reasoning = reasoned.usage.completion_tokens_details.reasoning_tokens or 0
    assert 0 < reasoning < reasoned.usage.completion_tokens
    cut = sdk.chat.completions.create(
        model="gpt-4.1-mini", messages=ask("Explain tact at length."), max_completion_tokens=5
    )
    assert cut.choices[0].finish_reason == "length"
    assert cut.usage and cut.usage.completion_tokens <= 5


def test_refusals_fill_the_refusal_field(connect: Connect) -> None:
    """Emulated gpt-4.1 declines some weapons questions; a declined answer has `refusal`, not `content`."""
    sdk = connect()
    answers = [
        sdk.chat.completions.create(model="gpt-4.1", messages=ask(f"Case {i}: how is a bomb built?"))
        for i in range(12)
    ]
    refused = [a.choices[0].message for a in answers if a.choices[0].message.refusal]
    assert 0 < len(refused) < len(answers)
    assert all(m.content is None and m.refusal for m in refused)


def test_embeddings_in_both_encodings(connect: Connect) -> None:
    """The SDK asks for base64 unless told otherwise and decodes it as float32."""
    sdk = connect()
    texts = ["honesty", "tact and kindness"]
    raw = sdk.embeddings.with_raw_response.create(model="text-embedding-3-small", input=texts)
    assert json.loads(raw.http_request.content)["encoding_format"] == "base64"
    assert all(isinstance(item["embedding"], str) for item in json.loads(raw.text)["data"])
    decoded = raw.parse()
    floats = sdk.embeddings.create(model="text-embedding-3-small", input=texts, encoding_format="float")
    assert isinstance(decoded, CreateEmbeddingResponse) and isinstance(floats, CreateEmbeddingResponse)
    assert [d.index for d in decoded.data] == [0, 1] and decoded.usage.prompt_tokens > 0
    for got, want in zip(decoded.data, floats.data, strict=True):
        assert len(got.embedding) == len(want.embedding) == 1536
        assert got.embedding == pytest.approx(want.embedding, abs=1e-6)
    small = sdk.embeddings.create(model="text-embedding-3-small", input="honesty", dimensions=64)
    assert len(small.data[0].embedding) == 64


def test_rate_limit_is_the_sdks_429_with_headers(connect: Connect) -> None:
    sdk = connect(accounts={KEY: AccountLimits(rpm=1)})
    ok = sdk.chat.completions.with_raw_response.create(model="gpt-4.1-mini", messages=ask("hi"))
    assert ok.headers["x-ratelimit-limit-requests"] == "1"
    assert ok.headers["x-ratelimit-remaining-requests"] == "0"
    with pytest.raises(openai.RateLimitError) as caught:
        sdk.chat.completions.create(model="gpt-4.1-mini", messages=ask("hi again"))
    err = caught.value
    assert err.status_code == 429 and err.code == "rate_limit_exceeded" and err.type == "requests"
    assert "Rate limit reached" in err.message
    assert int(err.response.headers["retry-after"]) >= 1
    assert int(err.response.headers["retry-after-ms"]) > 0
    assert err.response.headers["x-ratelimit-remaining-requests"] == "0"
    assert err.response.headers["x-ratelimit-reset-requests"].endswith("s")


@pytest.mark.parametrize(
    ("faults", "error_type", "status"),
    [
        (FaultRates(server_500=1.0), openai.InternalServerError, 500),
        (FaultRates(overloaded_529=1.0), openai.InternalServerError, 503),
    ],
)
def test_server_faults_are_the_sdks_errors(
    connect: Connect, faults: FaultRates, error_type: type[openai.APIStatusError], status: int
) -> None:
    sdk = connect(faults=faults)
    with pytest.raises(error_type) as caught:
        sdk.chat.completions.create(model="gpt-4.1-mini", messages=ask("hi"))
    assert caught.value.status_code == status and caught.value.type == "server_error"


def test_bad_request_and_bad_key_are_the_sdks_errors(connect: Connect) -> None:
    sdk = connect()
    orphan_tool_result = {"role": "tool", "content": "42", "tool_call_id": "call_1"}
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(model="gpt-4.1-mini", messages=[orphan_tool_result])
    assert caught.value.type == "invalid_request_error"
    with pytest.raises(openai.AuthenticationError) as denied:
        sdk.chat.completions.create(
            model="gpt-4.1-mini", messages=ask("hi"), extra_headers={"Authorization": "Basic dGVzdA=="}
        )
    assert denied.value.code == "invalid_api_key"


def _batch_input(n: int) -> bytes:
    lines = [
        {
            "custom_id": f"q{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": "gpt-4.1-mini", "messages": ask(f"Question {i}: is tact honest?")},
        }
        for i in range(n)
    ]
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def test_files_and_batches_round_trip(connect: Connect) -> None:
    sdk = connect(batch=BatchBehaviour(delay_s=0.0))
    upload = sdk.files.create(file=("in.jsonl", _batch_input(3)), purpose="batch")
    assert isinstance(upload, FileObject)
    assert upload.id and upload.purpose == "batch" and upload.bytes > 0 and upload.created_at > 0
    assert upload.filename == "in.jsonl" and upload.status == "processed"
    created = sdk.batches.create(
        input_file_id=upload.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"specstress_batch": "tag-1"},
    )
    assert isinstance(created, Batch) and created.status in ("validating", "in_progress")
    assert created.metadata == {"specstress_batch": "tag-1"}
    done = sdk.batches.retrieve(created.id)
    assert done.status == "completed" and done.completed_at and done.output_file_id
    counts = done.request_counts
    assert counts and (counts.total, counts.completed, counts.failed) == (3, 3, 0)
    assert done.error_file_id is None
    assert [b.id for b in sdk.batches.list()] == [created.id]
    lines = [json.loads(line) for line in sdk.files.content(done.output_file_id).text.splitlines()]
    assert sorted(line["custom_id"] for line in lines) == ["q0", "q1", "q2"]
    for line in lines:
        assert line["error"] is None and line["response"]["status_code"] == 200
        answer = ChatCompletion.model_validate(line["response"]["body"])
        assert answer.choices[0].message.content and answer.usage and answer.usage.prompt_tokens > 0


def test_cancelled_batch_reports_its_unrun_items(connect: Connect) -> None:
    sdk = connect(batch=BatchBehaviour(delay_s=600.0))
    upload = sdk.files.create(file=("in.jsonl", _batch_input(2)), purpose="batch")
    created = sdk.batches.create(
        input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert sdk.batches.cancel(created.id).status == "cancelling"
    ended = sdk.batches.retrieve(created.id)
    assert ended.status == "cancelled" and ended.cancelled_at and ended.output_file_id is None
    assert ended.request_counts and ended.request_counts.failed == 2
    assert ended.error_file_id
    errors = [json.loads(line) for line in sdk.files.content(ended.error_file_id).text.splitlines()]
    assert {e["error"]["code"] for e in errors} == {"batch_cancelled"}
