"""Structured-output requests as the providers check them, and the answer their decoding gives.

Each real API refuses a schema it cannot enforce with a 400 before generating anything;
the checks here are the ones our adapters' schemas must pass (OpenAI strict mode's closed,
fully-required objects; Gemini's OpenAPI subset without `additionalProperties`; Anthropic's
forced tool, which extended thinking does not allow). A request that passes is answered with
bare JSON, as grammar-constrained decoding gives it: no fences, never broken (only a cut at
max tokens can break it).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from actors.emulator.dialects.base import JSON, WireError


def _objects(schema: Any, where: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every object node of a JSON Schema with its path, the root first."""
    if not isinstance(schema, Mapping):
        return
    yield where or "(root)", schema
    for name, sub in (schema.get("properties") or {}).items():
        yield from _objects(sub, f"{where}.{name}" if where else name)
    if "items" in schema:
        yield from _objects(schema["items"], f"{where}[]")


def openai_schema(response_format: Any) -> JSON | None:
    """The schema of a chat completions `response_format`, or None for text and JSON mode.

    Raises:
        WireError: for a malformed field, or a strict schema OpenAI would refuse.
    """
    if response_format is None:
        return None
    if not isinstance(response_format, dict) or response_format.get("type") not in (
        "text",
        "json_object",
        "json_schema",
    ):
        raise WireError("response_format.type must be one of 'text', 'json_object', 'json_schema'")
    if response_format["type"] != "json_schema":
        return None
    spec = response_format.get("json_schema")
    if (
        not isinstance(spec, dict)
        or not isinstance(spec.get("name"), str)
        or not isinstance(spec.get("schema"), dict)
    ):
        raise WireError("response_format.json_schema needs a 'name' and a 'schema' object")
    if spec.get("strict"):
        for where, node in _objects(spec["schema"]):
            props = node.get("properties")
            if props is None:
                continue
            if node.get("additionalProperties") is not False:
                raise WireError(
                    f"Invalid schema for response_format '{spec['name']}': In context={where}, "
                    "'additionalProperties' is required to be supplied and to be false."
                )
            missing = [k for k in props if k not in (node.get("required") or [])]
            if missing:
                raise WireError(
                    f"Invalid schema for response_format '{spec['name']}': In context={where}, 'required' "
                    f"is required to be supplied and to be an array including every key in properties. "
                    f"Missing '{missing[0]}'."
                )
    return spec["schema"]


def gemini_schema(config: Mapping[str, Any], field: Any) -> JSON | None:
    """The schema of a `generationConfig` (`responseSchema`, or `responseJsonSchema`), or None.

    `field(config, snake_name)` reads a protobuf JSON field by either spelling.

    Raises:
        WireError: for a schema without the JSON MIME type, or an OpenAPI schema Gemini rejects.
    """
    openapi, plain = field(config, "response_schema"), field(config, "response_json_schema")
    schema = openapi if openapi is not None else plain
    if schema is None:
        return None
    if not isinstance(schema, dict):
        raise WireError("responseSchema must be an object")
    if field(config, "response_mime_type") != "application/json":
        raise WireError("responseMimeType must be 'application/json' when a response schema is set")
    if openapi is not None:
        for where, node in _objects(openapi):
            if "additionalProperties" in node:
                raise WireError(
                    'Invalid JSON payload received. Unknown name "additionalProperties" at '
                    f"'generation_config.response_schema' ({where}): Cannot find field."
                )
    return schema


def anthropic_tool(body: Mapping[str, Any], thinking: bool) -> tuple[str, JSON] | None:
    """The tool a messages request forces (`tool_choice` tool, or any of one tool) and its input
    schema; None when the model may answer in text.

    Raises:
        WireError: for malformed tools, an unknown tool name, or a forced tool with thinking on.
    """
    tools = body.get("tools")
    if tools is None:
        return None
    if not isinstance(tools, list) or not all(
        isinstance(t, dict) and isinstance(t.get("name"), str) and isinstance(t.get("input_schema"), dict)
        for t in tools
    ):
        raise WireError("tools: each tool needs a 'name' and an 'input_schema' object")
    choice = body.get("tool_choice") or {"type": "auto"}
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind not in ("auto", "any", "tool", "none"):
        raise WireError("tool_choice.type must be one of 'auto', 'any', 'tool', 'none'")
    forced = kind == "tool" or (kind == "any" and len(tools) == 1)
    if not forced:
        return None
    if thinking:
        raise WireError("Thinking may not be enabled when tool_choice forces tool use.")
    name = choice.get("name", tools[0]["name"])
    by_name = {t["name"]: t for t in tools}
    if name not in by_name:
        raise WireError(f"tool_choice names tool '{name}', which is not in tools")
    return name, by_name[name]["input_schema"]


def constrained(text: str) -> str:
    """An answer as schema-constrained decoding writes it: the JSON object alone, compact.

    A persona's answer that holds no JSON object is left as it is.
    """
    start, end = text.find("{"), text.rfind("}")
    try:
        return json.dumps(json.loads(text[start : end + 1]), ensure_ascii=False)
    except ValueError:
        return text
