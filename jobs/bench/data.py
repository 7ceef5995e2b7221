"""Synthetic embeddings for the analysis benchmarks, seeded from real queries where available.

Needs only numpy (the local model is imported only to embed the seeds), so the GPU bench
can run on a machine that has torch but not the rest of the stack.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

QUERIES = (
    Path(__file__).resolve().parents[2].parent
    / "shared"
    / "data"
    / "stress-testing-model-spec"
    / "sample_queries_500.jsonl"
)
D = 384


def queries() -> list[str]:
    """The paper's 500 sample queries, when `../shared` is beside the checkout; else none."""
    if not QUERIES.exists():
        return []
    with QUERIES.open() as f:
        return [json.loads(line)["text"] for line in f]


def numbered_texts(n: int) -> list[str]:
    """n distinct texts cycling through the sample queries (a number appended), for throughput runs."""
    base = queries()
    return [f"{base[i % len(base)]} ({i})" for i in range(n)] if base else []


def local_embedder() -> Callable[[list[str]], np.ndarray] | None:
    """The packaged local model's embed function, or None without the analysis stack or the extra."""
    try:
        from jobs.analysis.embed.backends import BackendSpec, local_model_path, make_embed_fn
    except ImportError:  # a machine with numpy and torch only (e.g. a bare GPU box)
        return None
    return make_embed_fn(BackendSpec(kind="local")) if local_model_path() is not None else None


def seeds(rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    """The 500 real queries embedded by the local model, or 500 random unit seeds (and which)."""
    texts = queries()
    embed = local_embedder() if texts else None
    if embed is not None:
        return embed(texts), True
    s = rng.normal(size=(500, D))
    return (s / np.linalg.norm(s, axis=1, keepdims=True)).astype(np.float32), False


def synthetic_vectors(n: int, seeds: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """n unit vectors around the seeds: topic shifts in 8 seed-specific directions plus noise."""
    k, d = seeds.shape
    basis = rng.normal(size=(k, 8, d)).astype(np.float32) / np.sqrt(d)
    out = np.empty((n, d), dtype=np.float32)
    for s in range(0, n, 50_000):
        m = min(50_000, n - s)
        which = rng.integers(0, k, m)
        topic = np.einsum("mk,mkd->md", rng.normal(size=(m, 8)).astype(np.float32), basis[which])
        strength = rng.uniform(0.05, 0.35, (m, 1)).astype(np.float32)
        noise = rng.normal(size=(m, d)).astype(np.float32) / np.sqrt(d)
        v = seeds[which] + strength * (topic / np.sqrt(8) * 2.0) + 0.12 * noise
        out[s : s + m] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def lift(seeds: np.ndarray, dim: int, rng: np.random.Generator) -> np.ndarray:
    """Seeds mapped to `dim` dimensions by a random Gaussian map: their distances stay about the same."""
    v = seeds @ (rng.normal(size=(seeds.shape[1], dim)).astype(np.float32) / np.sqrt(dim))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


if __name__ == "__main__":
    import sys

    vectors, real = seeds(np.random.default_rng(0))
    if not real:
        sys.exit("the local model or the sample queries are missing: no real seeds to save")
    np.save(sys.argv[1], vectors)
    print(f"saved {len(vectors)} seed embeddings to {sys.argv[1]}")
