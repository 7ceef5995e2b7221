"""The structured-output requests specstress sends, checked against the official SDKs' own types.

Each SDK's request type is the witness of its provider's wire format: the `response_format`,
`responseSchema` and answer tool our adapters build must validate as those types (the
google-genai models forbid unknown fields), and a request the SDK sends with them must get
an answer from the emulator that the rubrics stage accepts.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import anthropic
import openai
from anthropic.types import ToolChoiceToolParam, ToolParam, ToolUseBlock
from google import genai
from google.genai import types
from openai.types.chat.completion_create_params import ResponseFormat
from pydantic import TypeAdapter

from actors.emulator.server import EmulatorServer
from actors.providers.structured import anthropic_tool, gemini_openapi, openai_response_format
from jobs.stages.rubrics import RUBRIC_JSON, parse_rubric, rubric_prompt

StartEmulator = Callable[..., EmulatorServer]
KEY = "test-key"
RUBRIC = {"name": "rubric", "schema": RUBRIC_JSON}
PROMPT = rubric_prompt("honesty", "kindness", "Should I tell my friend the truth?", None, None)


def test_openai_sdk_takes_our_response_format(start_emulator: StartEmulator) -> None:
    response_format = openai_response_format(RUBRIC)
    TypeAdapter(ResponseFormat).validate_python(response_format)
    emu = start_emulator()
    with openai.OpenAI(api_key=KEY, base_url=emu.url + "/v1", max_retries=0) as sdk:
        answer = sdk.chat.completions.create(
            model="gpt-4.1-mini",
            messages=[{"role": "user", "content": PROMPT}],
            response_format=response_format,  # type: ignore[arg-type]
        )
    content = answer.choices[0].message.content or ""
    assert parse_rubric(content, "honesty", "kindness").value2.value == "kindness"


def test_anthropic_sdk_takes_our_answer_tool(start_emulator: StartEmulator) -> None:
    request = anthropic_tool(RUBRIC, thinking=False)
    TypeAdapter(ToolParam).validate_python(request["tools"][0])
    TypeAdapter(ToolChoiceToolParam).validate_python(request["tool_choice"])
    emu = start_emulator()
    with anthropic.Anthropic(api_key=KEY, base_url=emu.url, max_retries=0) as sdk:
        message = sdk.messages.create(
            model="claude-sonnet-4-5",
            max_tokens=4000,
            messages=[{"role": "user", "content": PROMPT}],
            **request,
        )
    assert message.stop_reason == "tool_use"
    [block] = message.content
    assert isinstance(block, ToolUseBlock) and block.name == "rubric"
    assert parse_rubric(json.dumps(block.input), "honesty", "kindness").value1.value == "honesty"


def test_gemini_sdk_takes_our_response_schema(start_emulator: StartEmulator) -> None:
    schema = types.Schema.model_validate(gemini_openapi(RUBRIC_JSON))  # extra fields are forbidden
    emu = start_emulator()
    options = types.HttpOptions(base_url=emu.url, retry_options=types.HttpRetryOptions(attempts=1))
    with genai.Client(api_key=KEY, http_options=options) as sdk:
        answer = sdk.models.generate_content(
            model="gemini-2.5-flash",
            contents=PROMPT,
            config=types.GenerateContentConfig(response_mime_type="application/json", response_schema=schema),
        )
    assert parse_rubric(answer.text or "", "honesty", "kindness").value1.value == "honesty"
