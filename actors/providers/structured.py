"""Structured outputs: one neutral JSON Schema, in the terms each wire format accepts.

A stage sends the shape of the JSON it wants as `CallSpec.response_schema`
(`{"name": ..., "schema": ...}`), in the plain JSON Schema subset `jobs.stages.structured`
derives from its pydantic model: objects with `properties` and `required`, arrays with
`items`, `minItems`/`maxItems`, string `enum`s, number `minimum`/`maximum`, `description`,
no `$ref`. Each provider wants it differently:

- OpenAI (and llama.cpp, vLLM): `response_format` `json_schema` in strict mode, where every
  object must list all its properties as required and forbid others;
- Gemini: `generationConfig.responseSchema`, an OpenAPI 3.0 subset with upper-case types, no
  `additionalProperties`, enums of strings only (marked `format: enum`), and `propertyOrdering`;
- Anthropic: a single tool whose `input_schema` is the schema, which the model is made to call.

A schema only helps: the answer is still validated strictly by the stage that asked.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

ANSWER_TOOL_DESCRIPTION = "Record the answer. Its input is the JSON object the instructions ask for."
"""Description of the Anthropic tool that carries a structured answer."""

_SHARED = ("description", "enum", "minimum", "maximum", "minItems", "maxItems")
"""Keywords both OpenAI strict mode and Gemini's OpenAPI subset accept as they are."""


def openai_strict(schema: Mapping[str, Any]) -> dict[str, Any]:
    """`schema` as OpenAI's strict mode requires: every object closed, every property required."""
    out: dict[str, Any] = {k: schema[k] for k in ("type", *_SHARED) if k in schema}
    if "properties" in schema:
        props = schema["properties"]
        out["properties"] = {name: openai_strict(sub) for name, sub in props.items()}
        out["required"] = list(props)
        out["additionalProperties"] = False
    if "items" in schema:
        out["items"] = openai_strict(schema["items"])
    return out


def gemini_openapi(schema: Mapping[str, Any]) -> dict[str, Any]:
    """`schema` as Gemini's `responseSchema` (OpenAPI subset): upper-case types, ordered properties."""
    out: dict[str, Any] = {k: schema[k] for k in _SHARED if k in schema}
    if "type" in schema:
        out["type"] = str(schema["type"]).upper()
    if "enum" in schema:
        if schema.get("type") == "string":
            out["format"] = "enum"
        else:
            del out["enum"]  # Gemini's enums are strings; a number keeps its minimum and maximum
    if "properties" in schema:
        props = schema["properties"]
        out["properties"] = {name: gemini_openapi(sub) for name, sub in props.items()}
        out["required"] = list(schema.get("required", props))
        out["propertyOrdering"] = list(props)
    if "items" in schema:
        out["items"] = gemini_openapi(schema["items"])
    return out


SCHEMA_FORMATS = ("json_schema", "json_object")
"""Values of the `schema_format` param: OpenAI's `json_schema` response format (also llama.cpp's
own server and vLLM), or llama-cpp-python's server's `json_object` with a `schema`, which
refuses the former."""


def openai_response_format(
    response_schema: Mapping[str, Any], schema_format: str = "json_schema"
) -> dict[str, Any]:
    """The chat completions `response_format` asking for JSON of this schema, strictly."""
    if schema_format == "json_object":
        return {"type": "json_object", "schema": openai_strict(response_schema["schema"])}
    return {
        "type": "json_schema",
        "json_schema": {
            "name": response_schema["name"],
            "schema": openai_strict(response_schema["schema"]),
            "strict": True,
        },
    }


def anthropic_tool(response_schema: Mapping[str, Any], *, thinking: bool) -> dict[str, Any]:
    """`tools` and `tool_choice` of a messages request whose answer is the tool's input.

    The tool is forced, except with extended thinking, which allows only `auto` tool choice:
    there the model may still answer in text, which the stage parses as usual.
    """
    name = response_schema["name"]
    tool = {"name": name, "description": ANSWER_TOOL_DESCRIPTION, "input_schema": response_schema["schema"]}
    choice = {"type": "auto"} if thinking else {"type": "tool", "name": name}
    return {"tools": [tool], "tool_choice": choice}
