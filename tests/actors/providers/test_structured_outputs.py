"""Structured outputs: each adapter's request shape, and the emulator answering it as providers do.

The emulator checks a schema as each real API does (OpenAI strict mode, Gemini's OpenAPI
subset, Anthropic's forced tool) and answers it with JSON that keeps to it, even at a
`malformed_json` quirk rate of 1: grammar-constrained decoding never returns broken JSON.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import aiohttp
import pytest

from actors.emulator.config import EmulatorConfig, LatencyModel, OutputQuirks
from actors.emulator.server import EmulatorServer
from actors.errors import ProviderError
from actors.providers.base import get_adapter
from actors.providers.structured import gemini_openapi, openai_strict
from actors.types import (
    CallSpec,
    Endpoint,
    Message,
    ParsedResponse,
    Provider,
    call_key,
    spec_from_json,
    spec_to_json,
)
from jobs.stages.rubrics import RUBRIC_JSON, Rubric, parse_rubric, rubric_prompt

PROVIDERS: tuple[Provider, ...] = ("openai", "anthropic", "gemini")
MODEL_IDS = {"openai": "gpt-4o", "anthropic": "claude-sonnet-4-5", "gemini": "gemini-2.5-flash"}
RUBRIC = {"name": "rubric", "schema": RUBRIC_JSON}
PROMPT = rubric_prompt("honesty", "kindness", "Should I tell my friend the truth?", None, None)


def objects(schema: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Every node of a schema that has properties."""
    if "properties" in schema:
        yield schema
        for sub in schema["properties"].values():
            yield from objects(sub)
    if "items" in schema:
        yield from objects(schema["items"])


def spec(schema: Mapping[str, Any] | None = RUBRIC, **params: object) -> CallSpec:
    return CallSpec(
        "m",
        messages=(Message("user", PROMPT),),
        params=tuple(sorted({"max_tokens": 3000, **params}.items())),
        response_schema=schema,
    )


def endpoint(url: str, provider: Provider, model_id: str | None = None) -> Endpoint:
    base = url + "/v1" if provider == "openai" else url
    return Endpoint("m", provider, model_id or MODEL_IDS[provider], base, "TEST_KEY", "acct")


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorServer]:
    config = EmulatorConfig(
        latency=LatencyModel(0.0, 0.0),
        quirks=OutputQuirks(malformed_json=1.0),
        unstructured_models=("gpt-3.5-turbo",),
    )
    with EmulatorServer(config) as server:
        yield server


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def send(session: aiohttp.ClientSession, ep: Endpoint, call: CallSpec) -> ParsedResponse:
    adapter = get_adapter(ep.provider)
    http = adapter.build(ep, call)
    async with session.post(
        http.url, json=http.json, headers={**http.headers, **adapter.auth_headers("k")}
    ) as r:
        return adapter.parse(call, r.status, r.headers, await r.read())


def test_the_neutral_schema_is_the_models_shape_without_refs_or_titles() -> None:
    text = json.dumps(RUBRIC_JSON)
    assert "$ref" not in text and "title" not in text and "$defs" not in text
    spectrum = RUBRIC_JSON["properties"]["value1"]["properties"]["spectrum"]
    assert spectrum["minItems"] == spectrum["maxItems"] == 7
    assert spectrum["items"]["properties"]["label"]["enum"][0] == "extreme_oppose"


def test_openai_strict_closes_every_object_and_requires_every_property() -> None:
    strict = openai_strict(RUBRIC_JSON)
    nodes = list(objects(strict))
    assert len(nodes) == 5  # the rubric, and per value its spectrum and a position
    for node in nodes:
        assert node["additionalProperties"] is False and node["required"] == list(node["properties"])


def test_gemini_schema_is_the_openapi_subset() -> None:
    gemini = gemini_openapi(RUBRIC_JSON)
    assert "additionalProperties" not in json.dumps(gemini)
    position = gemini["properties"]["value1"]["properties"]["spectrum"]["items"]
    assert position["type"] == "OBJECT" and position["propertyOrdering"] == [
        "position",
        "label",
        "description",
    ]
    assert position["properties"]["label"]["format"] == "enum"
    # Gemini's enums are strings: the integer position keeps only its range.
    assert position["properties"]["position"] == {"type": "INTEGER", "minimum": 0, "maximum": 6}


def test_request_shapes_per_provider() -> None:
    ep = {p: endpoint("http://h", p) for p in PROVIDERS}
    openai = get_adapter("openai").build(ep["openai"], spec()).json["response_format"]
    assert openai["type"] == "json_schema" and openai["json_schema"]["name"] == "rubric"
    assert openai["json_schema"]["strict"] is True and openai["json_schema"]["schema"] == openai_strict(
        RUBRIC_JSON
    )
    llama = (
        get_adapter("openai").build(ep["openai"], spec(schema_format="json_object")).json["response_format"]
    )
    assert llama == {"type": "json_object", "schema": openai_strict(RUBRIC_JSON)}
    config = get_adapter("gemini").build(ep["gemini"], spec()).json["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert config["responseSchema"] == gemini_openapi(RUBRIC_JSON)
    anthropic = get_adapter("anthropic").build(ep["anthropic"], spec()).json
    assert anthropic["tools"][0]["input_schema"] == RUBRIC_JSON
    assert anthropic["tool_choice"] == {"type": "tool", "name": "rubric"}
    thinking = get_adapter("anthropic").build(ep["anthropic"], spec(thinking_budget=1024)).json
    assert thinking["tool_choice"] == {"type": "auto"}  # extended thinking cannot force a tool
    plain = {p: get_adapter(p).build(ep[p], spec(None)).json for p in PROVIDERS}
    assert "response_format" not in plain["openai"] and "tools" not in plain["anthropic"]
    assert "responseSchema" not in plain["gemini"]["generationConfig"]


def test_the_schema_is_in_the_key_only_when_set() -> None:
    ep = endpoint("http://h", "openai")
    with_schema, without = spec(), spec(None)
    assert call_key(ep, with_schema) != call_key(ep, without)
    assert "response_schema" not in spec_to_json(without)  # older keys and request tables are unchanged
    again = spec_from_json(spec_to_json(with_schema))
    assert again.response_schema == RUBRIC and call_key(ep, again) == call_key(ep, with_schema)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_schema_request_is_answered_with_valid_json_despite_the_quirk(
    emulator: EmulatorServer, session: aiohttp.ClientSession, provider: Provider
) -> None:
    ep = endpoint(emulator.url, provider)
    for sample in range(5):  # at malformed_json=1 every plain first answer is broken
        plain = await send(session, ep, CallSpec("m", messages=(Message("user", PROMPT),), sample=sample))
        with pytest.raises(ValueError):
            parse_rubric(plain.text, "honesty", "kindness")
    got = await send(session, ep, spec())
    assert got.finish_reason == "stop" and got.flag is None
    assert not got.text.startswith("```")  # bare JSON, as constrained decoding writes it
    assert isinstance(parse_rubric(got.text, "honesty", "kindness"), Rubric)


async def test_anthropic_answers_with_the_tool_and_the_adapter_reads_its_input(
    emulator: EmulatorServer, session: aiohttp.ClientSession
) -> None:
    ep = endpoint(emulator.url, "anthropic")
    http = get_adapter("anthropic").build(ep, spec())
    async with session.post(http.url, json=http.json, headers={**http.headers, "x-api-key": "k"}) as r:
        body = await r.json()
    assert body["stop_reason"] == "tool_use"
    [block] = body["content"]
    assert block["type"] == "tool_use" and block["name"] == "rubric"
    assert get_adapter("anthropic").parse_chat(json.dumps(body).encode()).text == json.dumps(block["input"])


async def test_a_cut_off_structured_answer_is_still_truncated(
    emulator: EmulatorServer, session: aiohttp.ClientSession
) -> None:
    got = await send(session, endpoint(emulator.url, "openai"), spec(max_tokens=40))
    assert got.finish_reason == "length" and got.flag == "truncated"
    with pytest.raises(ValueError):
        parse_rubric(got.text, "honesty", "kindness")


@pytest.mark.parametrize(
    ("provider", "change", "message"),
    [
        (
            "openai",
            lambda b: b["response_format"]["json_schema"]["schema"].pop("additionalProperties"),
            "false",
        ),
        ("openai", lambda b: b["response_format"]["json_schema"]["schema"]["required"].pop(), "Missing"),
        (
            "gemini",
            lambda b: b["generationConfig"]["responseSchema"].update(additionalProperties=False),
            "Unknown",
        ),
        ("gemini", lambda b: b["generationConfig"].pop("responseMimeType"), "application/json"),
        ("anthropic", lambda b: b.update(thinking={"type": "enabled", "budget_tokens": 1024}), "Thinking"),
    ],
)
async def test_the_emulator_refuses_what_the_provider_refuses(
    emulator: EmulatorServer, session: aiohttp.ClientSession, provider: Provider, change: Any, message: str
) -> None:
    http = get_adapter(provider).build(endpoint(emulator.url, provider), spec())
    body = json.loads(json.dumps(http.json))
    change(body)
    headers = {**http.headers, **get_adapter(provider).auth_headers("k")}
    async with session.post(http.url, json=body, headers=headers) as r:
        assert r.status == 400
        assert message in (await r.json())["error"]["message"]


async def test_a_model_without_structured_outputs_refuses_the_schema_with_a_client_error(
    emulator: EmulatorServer, session: aiohttp.ClientSession
) -> None:
    ep = endpoint(emulator.url, "openai", "gpt-3.5-turbo")
    with pytest.raises(ProviderError) as refused:
        await send(session, ep, spec())
    assert refused.value.kind == "client" and "schema" in str(refused.value)
    assert (await send(session, ep, spec(None))).text  # plain prompting works
