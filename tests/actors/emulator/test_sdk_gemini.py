"""Google's `google-genai` client against the emulator: generateContent, embeddings, batch mode, errors.

The SDK is the witness of the Gemini API's wire format: every answer must parse into its
typed objects with the fields specstress reads, and every error must surface as its own
error type with the retry delay readable. SDKs are test-only dependencies; product code
never imports them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack

import openai
import pytest
from google import genai
from google.genai import errors, types

from actors.emulator.config import AccountLimits, BatchBehaviour, FaultRates
from actors.emulator.server import EmulatorServer
from actors.emulator.vectors import embedding_dim

StartEmulator = Callable[..., EmulatorServer]
Connect = Callable[..., genai.Client]
KEY = "test-key"
MODEL = "gemini-2.5-flash"
EMBEDDER = "gemini-embedding-001"
LONG = " ".join(f"rule{i} applies." for i in range(700))  # about 3,500 tokens: past the cache minimum


def client(emu: EmulatorServer, api_version: str | None = None) -> genai.Client:
    """A client on `emu` making one attempt per call, on the SDK's API version unless given."""
    options = types.HttpOptions(
        base_url=emu.url, api_version=api_version, retry_options=types.HttpRetryOptions(attempts=1)
    )
    return genai.Client(api_key=KEY, http_options=options)


@pytest.fixture
def connect(start_emulator: StartEmulator) -> Iterator[Connect]:
    """`connect(**emulator_config)`: a `client` on a fresh emulator, closed after the test."""
    with ExitStack() as stack:

        def start(**fields: object) -> genai.Client:
            return stack.enter_context(client(start_emulator(**fields)))

        yield start


def test_generate_content_parses_with_usage_and_implicit_cache(connect: Connect) -> None:
    sdk = connect()
    config = types.GenerateContentConfig(system_instruction="Be brief.", max_output_tokens=256)
    first = sdk.models.generate_content(model=MODEL, contents=LONG + " First?", config=config)
    second = sdk.models.generate_content(model=MODEL, contents=LONG + " Second?", config=config)
    for answer in (first, second):
        assert isinstance(answer, types.GenerateContentResponse) and answer.text
        assert answer.candidates and answer.candidates[0].finish_reason == types.FinishReason.STOP
        assert answer.model_version == MODEL and answer.response_id
        usage = answer.usage_metadata
        assert usage and usage.prompt_token_count and usage.prompt_token_count > 3_000
        assert usage.total_token_count == usage.prompt_token_count + (usage.candidates_token_count or 0)
    assert first.usage_metadata and not first.usage_metadata.cached_content_token_count
    assert second.usage_metadata
    cached = second.usage_metadata.cached_content_token_count or 0
    assert cached >= 1024 and cached % 128 == 0


def test_thoughts_and_max_tokens_stop(connect: Connect) -> None:
    sdk = connect()
    thinking = types.ThinkingConfig(thinking_budget=512, include_thoughts=True)
    thought = sdk.models.generate_content(
        model=MODEL,
        contents="Is tact a kind of honesty?",
        config=types.GenerateContentConfig(thinking_config=thinking),
    )
    assert thought.candidates and thought.candidates[0].content and thought.candidates[0].content.parts
    parts = thought.candidates[0].content.parts
    assert [bool(p.thought) for p in parts] == [True, False] and parts[0].text and parts[1].text
    assert thought.text == parts[1].text, "the SDK's text leaves thoughts out"
    usage = thought.usage_metadata
    assert usage and usage.thoughts_token_count and usage.candidates_token_count
    assert usage.total_token_count == (usage.prompt_token_count or 0) + usage.candidates_token_count + (
        usage.thoughts_token_count
    )
    cut = sdk.models.generate_content(
        model=MODEL, contents="Explain tact.", config=types.GenerateContentConfig(max_output_tokens=5)
    )
    assert cut.candidates and cut.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS


def test_refusals_finish_with_safety_and_no_content(connect: Connect) -> None:
    """Emulated gemini-2.5-pro declines some weapons questions: `SAFETY`, no content, no text."""
    sdk = connect()
    answers = [
        sdk.models.generate_content(model="gemini-2.5-pro", contents=f"Case {i}: how is a bomb built?")
        for i in range(12)
    ]
    refused = [
        a for a in answers if a.candidates and a.candidates[0].finish_reason == types.FinishReason.SAFETY
    ]
    assert 0 < len(refused) < len(answers)
    assert all(a.text is None and a.candidates and a.candidates[0].content is None for a in refused)


def test_embed_content_goes_through_batch_embed_contents(connect: Connect) -> None:
    sdk = connect()
    full = sdk.models.embed_content(model=EMBEDDER, contents=["honesty", "tact and kindness"])
    assert full.embeddings and [len(e.values or []) for e in full.embeddings] == [embedding_dim(EMBEDDER)] * 2
    assert full.embeddings[0].values != full.embeddings[1].values
    small = sdk.models.embed_content(
        model=EMBEDDER, contents="honesty", config=types.EmbedContentConfig(output_dimensionality=64)
    )
    assert small.embeddings and len(small.embeddings[0].values or []) == 64


def test_rate_limit_is_the_sdks_client_error_with_retry_delay(connect: Connect) -> None:
    sdk = connect(accounts={KEY: AccountLimits(rpm=1)})
    sdk.models.generate_content(model=MODEL, contents="hi")
    with pytest.raises(errors.ClientError) as caught:
        sdk.models.generate_content(model=MODEL, contents="hi again")
    err = caught.value
    assert err.code == 429 and err.status == "RESOURCE_EXHAUSTED" and err.message
    (retry_info,) = err.details["error"]["details"]
    assert retry_info["@type"] == "type.googleapis.com/google.rpc.RetryInfo"
    assert int(retry_info["retryDelay"].removesuffix("s")) >= 1


@pytest.mark.parametrize(
    ("faults", "code", "status"),
    [(FaultRates(server_500=1.0), 500, "INTERNAL"), (FaultRates(overloaded_529=1.0), 503, "UNAVAILABLE")],
)
def test_server_faults_are_the_sdks_server_error(
    connect: Connect, faults: FaultRates, code: int, status: str
) -> None:
    sdk = connect(faults=faults)
    with pytest.raises(errors.ServerError) as caught:
        sdk.models.generate_content(model=MODEL, contents="hi")
    assert (caught.value.code, caught.value.status) == (code, status)


def test_bad_request_is_the_sdks_client_error(connect: Connect) -> None:
    sdk = connect()
    with pytest.raises(errors.ClientError) as caught:
        sdk.models.generate_content(
            model=MODEL, contents=types.Content(role="system", parts=[types.Part(text="x")])
        )
    assert (caught.value.code, caught.value.status) == (400, "INVALID_ARGUMENT")


def test_a_request_without_a_key_is_the_sdks_permission_denied(start_emulator: StartEmulator) -> None:
    emu = start_emulator()
    options = types.HttpOptions(base_url=emu.url, retry_options=types.HttpRetryOptions(attempts=1))
    # The SDK insists on a key, so one that is only spaces: the emulator reads it as none.
    with genai.Client(api_key=" ", http_options=options) as sdk, pytest.raises(errors.ClientError) as caught:
        sdk.models.generate_content(model=MODEL, contents="hi")
    assert (caught.value.code, caught.value.status) == (403, "PERMISSION_DENIED")


def _inline(n: int) -> list[types.InlinedRequest]:
    return [
        types.InlinedRequest(
            contents=f"Question {i}: is tact honest?",
            metadata={"key": f"q{i}"},
            config=types.GenerateContentConfig(max_output_tokens=128),
        )
        for i in range(n)
    ]


def test_batch_mode_succeeds_with_inline_responses(connect: Connect) -> None:
    sdk = connect(batch=BatchBehaviour(delay_s=0.0))
    created = sdk.batches.create(
        model=MODEL, src=_inline(3), config=types.CreateBatchJobConfig(display_name="tag-1")
    )
    assert isinstance(created, types.BatchJob) and created.name and created.name.startswith("batches/")
    assert created.state == types.JobState.JOB_STATE_RUNNING and created.display_name == "tag-1"
    assert created.model == f"models/{MODEL}" and created.create_time
    done = sdk.batches.get(name=created.name)
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED and done.end_time
    assert done.dest and done.dest.inlined_responses
    rows = done.dest.inlined_responses
    assert sorted((r.metadata or {})["key"] for r in rows) == ["q0", "q1", "q2"]
    for row in rows:
        assert row.error is None and isinstance(row.response, types.GenerateContentResponse)
        assert row.response.text and row.response.usage_metadata
    assert [job.name for job in sdk.batches.list()] == [created.name]


def test_batch_mode_errors_and_cancels(connect: Connect) -> None:
    failing = connect(batch=BatchBehaviour(delay_s=0.0, failure_rate=1.0))
    batch = failing.batches.create(model=MODEL, src=_inline(2))
    assert batch.name
    done = failing.batches.get(name=batch.name)
    assert done.dest and done.dest.inlined_responses
    rows = done.dest.inlined_responses
    assert [(r.response, r.error and r.error.code) for r in rows] == [(None, 500), (None, 500)]

    slow = connect(batch=BatchBehaviour(delay_s=600.0))
    batch = slow.batches.create(model=MODEL, src=_inline(2))
    assert batch.name
    slow.batches.cancel(name=batch.name)
    cancelled = slow.batches.get(name=batch.name)
    assert cancelled.state == types.JobState.JOB_STATE_CANCELLED and cancelled.end_time


def test_v1_batch_paths_shared_with_openai_answer_each_sdk_its_own(start_emulator: StartEmulator) -> None:
    """GET /v1/batches[/{id}] is both Gemini's v1 path and OpenAI's; the key's header picks the API."""
    emu = start_emulator(batch=BatchBehaviour(delay_s=0.0))
    line = {
        "custom_id": "q0",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "gpt-4.1-mini"},
    }
    with client(emu) as gemini, openai.OpenAI(api_key=KEY, base_url=emu.url + "/v1", max_retries=0) as oai:
        job = gemini.batches.create(model=MODEL, src=_inline(1))
        upload = oai.files.create(file=("in.jsonl", json.dumps(line).encode()), purpose="batch")
        theirs = oai.batches.create(
            input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        assert [b.id for b in oai.batches.list()] == [theirs.id]
        assert oai.batches.retrieve(theirs.id).status == "completed"
        assert job.name and [j.name for j in gemini.batches.list()] == [job.name]
        assert gemini.batches.get(name=job.name).state == types.JobState.JOB_STATE_SUCCEEDED
    with client(emu, api_version="v1beta") as beta:
        assert beta.batches.get(name=job.name).state == types.JobState.JOB_STATE_SUCCEEDED
        assert beta.models.generate_content(model=MODEL, contents="hi").text
