"""How many answers of a real OpenAI-compatible server parse, with and without the schema.

Sends N requests of a task built exactly as its stage builds them (the stage's prompt and
schema, the OpenAI adapter's request body), once in plain prompting and once with the
schema, and counts the answers that hold a JSON object and those the stage's strict parser
accepts. Against llama.cpp (which enforces the schema by grammar) it shows what structured
outputs do for a small local model:

    .venv/bin/python -m llama_cpp.server --model SmolLM2-135M-Instruct.Q4_1.gguf --port 8091 &
    .venv/bin/python scripts/structured_check.py --base-url http://127.0.0.1:8091/v1 -n 10 --task rubric

(llama-cpp-python's server takes the schema as `json_object` with a `schema`, the default here;
llama.cpp's own `llama-server` and vLLM take OpenAI's `--schema-format json_schema`.)
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from actors.providers.base import get_adapter
from actors.types import CallSpec, Endpoint, Message
from jobs.stages.refusals import REFUSAL_JSON, parse_refusal, refusal_prompt
from jobs.stages.repair import ParseError, extract_json
from jobs.stages.rubrics import RUBRIC_JSON, parse_rubric, rubric_prompt

PAIRS = [
    ("honesty", "kindness"),
    ("privacy", "safety"),
    ("autonomy", "wellbeing"),
    ("fairness", "loyalty"),
    ("creativity", "accuracy"),
    ("transparency", "security"),
    ("freedom of expression", "harm prevention"),
    ("efficiency", "thoroughness"),
    ("tradition", "innovation"),
    ("individual rights", "public health"),
]
QUERY = "My friend asked me for advice where {a} and {b} pull in different directions. What should I say?"
RESPONSE = "I can't help with every part of that, but in general it helps to weigh {a} against {b} openly."


@dataclass(frozen=True)
class Task:
    """A stage's request for pair `i` and its strict parser."""

    name: str
    schema: dict[str, Any]
    prompt: Callable[[str, str], str]
    parse: Callable[[str, str, str], object]


TASKS = {
    "rubric": Task(
        "rubric",
        RUBRIC_JSON,
        lambda a, b: rubric_prompt(a, b, QUERY.format(a=a, b=b), None, None),
        parse_rubric,
    ),
    "refusal": Task(
        "refusal",
        REFUSAL_JSON,
        lambda a, b: refusal_prompt(QUERY.format(a=a, b=b), RESPONSE.format(a=a, b=b)),
        lambda text, _a, _b: parse_refusal(text),
    ),
}


def ask(endpoint: Endpoint, spec: CallSpec) -> str:
    """One chat completion's answer text, as the adapter reads it."""
    adapter = get_adapter("openai")
    call = adapter.build(endpoint, spec)
    request = urllib.request.Request(
        call.url, json.dumps(call.json).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=600) as resp:
        return adapter.parse_chat(resp.read()).text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8091/v1")
    parser.add_argument("--model-id", default="local")
    parser.add_argument("--task", choices=sorted(TASKS), default="rubric")
    parser.add_argument("-n", type=int, default=10, help="requests per mode")
    parser.add_argument("--max-tokens", type=int, default=1500)
    parser.add_argument(
        "--schema-format",
        default="json_object",
        help="json_object for llama-cpp-python, json_schema elsewhere",
    )
    args = parser.parse_args()
    task = TASKS[args.task]
    endpoint = Endpoint("local", "openai", args.model_id, args.base_url, "NO_KEY", "local")
    params = (("max_tokens", args.max_tokens), ("schema_format", args.schema_format), ("temperature", 0.0))
    for mode, schema in (("plain", None), ("schema", {"name": task.name, "schema": task.schema})):
        ok, parsed, errors, started = 0, 0, [], time.monotonic()
        for i in range(args.n):
            a, b = PAIRS[i % len(PAIRS)]
            prompt = task.prompt(a, b)
            spec = CallSpec(
                "local", messages=(Message("user", prompt),), params=params, response_schema=schema
            )
            text = ask(endpoint, spec)
            try:
                extract_json(text)
                parsed += 1
                task.parse(text, a, b)
                ok += 1
            except ParseError as exc:
                errors.append(str(exc)[:160])
        took = time.monotonic() - started
        print(
            f"{task.name}, {mode}: of {args.n} answers, {parsed} hold a JSON object and {ok} pass the "
            f"stage's strict validation ({took:.0f} s)"
        )
        for error in errors[:3]:
            print(f"  e.g. {error}")


if __name__ == "__main__":
    main()
