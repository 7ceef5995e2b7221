"""Embedding wire formats: OpenAI `/embeddings` and Gemini `batchEmbedContents`.

The chat adapters of both providers delegate `kind == "embed"` here, so each embedding
shape is written once. Vectors come back as tuples of floats in input order.
"""

from __future__ import annotations

from actors.errors import ProviderError
from actors.providers.base import WireModel
from actors.types import CallSpec, Endpoint, HttpCall, ParsedResponse


def _inputs(spec: CallSpec) -> list[str]:
    if not spec.inputs:
        raise ProviderError("client", f"model {spec.model}: an embed call needs at least one input")
    return list(spec.inputs)


class _OpenAIItem(WireModel):
    index: int
    embedding: list[float]


class _OpenAIUsage(WireModel):
    prompt_tokens: int = 0


class _OpenAIEmbeddings(WireModel):
    data: list[_OpenAIItem]
    usage: _OpenAIUsage = _OpenAIUsage()


def build_openai_embed(endpoint: Endpoint, spec: CallSpec) -> HttpCall:
    """POST {base_url}/embeddings with every input in one batch."""
    body: dict[str, object] = {"model": endpoint.model_id, "input": _inputs(spec), "encoding_format": "float"}
    if "dimensions" in spec.param_dict:
        body["dimensions"] = spec.param_dict["dimensions"]
    return HttpCall(url=f"{endpoint.base_url.rstrip('/')}/embeddings", json=body)


def parse_openai_embed(body: bytes) -> ParsedResponse:
    """Vectors sorted by `index`, since the API does not promise order."""
    wire = _OpenAIEmbeddings.model_validate_json(body)
    items = sorted(wire.data, key=lambda item: item.index)
    return ParsedResponse(
        input_tokens=wire.usage.prompt_tokens,
        embeddings=tuple(tuple(item.embedding) for item in items),
    )


class _GeminiValues(WireModel):
    values: list[float]


class _GeminiEmbeddings(WireModel):
    embeddings: list[_GeminiValues]


def build_gemini_embed(endpoint: Endpoint, spec: CallSpec) -> HttpCall:
    """POST {base_url}/v1beta/models/{id}:batchEmbedContents; each request names its model again
    (and its `outputDimensionality`, when `dimensions` is set)."""
    name = f"models/{endpoint.model_id}"
    size = {"outputDimensionality": spec.param_dict["dimensions"]} if "dimensions" in spec.param_dict else {}
    requests = [{"model": name, "content": {"parts": [{"text": text}]}, **size} for text in _inputs(spec)]
    url = f"{endpoint.base_url.rstrip('/')}/v1beta/{name}:batchEmbedContents"
    return HttpCall(url=url, json={"requests": requests})


def parse_gemini_embed(body: bytes) -> ParsedResponse:
    """Vectors in request order. Gemini reports no token usage for embeddings, so tokens stay 0."""
    wire = _GeminiEmbeddings.model_validate_json(body)
    return ParsedResponse(embeddings=tuple(tuple(item.values) for item in wire.embeddings))
