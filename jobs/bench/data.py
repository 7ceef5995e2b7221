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
D_GEMINI = 3072


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


def seed_spectrum(seeds: np.ndarray, floor: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """The seeds' covariance as (per-direction variances, orthonormal directions), largest first.

    500 seeds cannot resolve the smallest directions (a few come out as zero), so each
    variance is raised to at least `floor` times the mean: no direction is left empty.
    """
    centred = seeds.astype(np.float64) - seeds.mean(axis=0)
    var, dirs = np.linalg.eigh(centred.T @ centred / max(len(seeds) - 1, 1))
    var, dirs = var[::-1], dirs[:, ::-1]
    return np.maximum(var, floor * var.mean()), dirs


def realistic_vectors(
    n: int,
    seeds: np.ndarray,
    rng: np.random.Generator,
    *,
    spread: float = 1.0,
    rewrite_share: float = 0.3,
    rewrite_distance: tuple[float, float] = (0.05, 0.35),
) -> np.ndarray:
    """n unit vectors shaped like a real scenario set, where δ-selection keeps about 70%.

    Why not `synthetic_vectors`: there, points crowd around 500 topics and δ = 0.4 keeps
    about 16%; the paper kept about 73%. Here:

    - originals (1 - `rewrite_share` of n) are a seed plus `spread` times a Gaussian step
      with the seeds' own covariance (`seed_spectrum`: variance decays over directions
      as a real embedding spectrum does, top 64 of 384 directions hold ~70% of it), so
      they are anisotropic and mostly more than δ from one another;
    - rewrites are near-duplicates: an original turned towards another such step by an
      L2 distance drawn uniformly from `rewrite_distance`, all within δ = 0.4.

    The kept share is then about 1 - `rewrite_share` at any n (slightly more where two
    rewrites of one original are more than δ apart and both come before it).
    """
    k, d = seeds.shape
    var, dirs = seed_spectrum(seeds)
    scale = (np.sqrt(var)[:, None] * dirs.T).astype(np.float32)  # step = z @ scale, z ~ N(0, I)
    n_rewrites = round(rewrite_share * n)
    n_orig = n - n_rewrites
    out = np.empty((n, d), dtype=np.float32)
    for s in range(0, n_orig, 50_000):
        m = min(50_000, n_orig - s)
        step = rng.standard_normal((m, d), dtype=np.float32) @ scale
        v = seeds[rng.integers(0, k, m)] + spread * step
        out[s : s + m] = v / np.linalg.norm(v, axis=1, keepdims=True)
    for s in range(n_orig, n, 50_000):
        m = min(50_000, n - s)
        parent = out[rng.integers(0, n_orig, m)]
        step = rng.standard_normal((m, d), dtype=np.float32) @ scale
        step -= np.einsum("ij,ij->i", step, parent)[:, None] * parent  # tangent at the parent
        step /= np.linalg.norm(step, axis=1, keepdims=True)
        # a chord of length r on the unit sphere is an angle of 2·asin(r/2)
        angle = 2 * np.arcsin(rng.uniform(*rewrite_distance, (m, 1)) / 2).astype(np.float32)
        v = np.cos(angle) * parent + np.sin(angle) * step
        out[s : s + m] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out[rng.permutation(n)]


def isometric_lift(x: np.ndarray, dim: int, rng: np.random.Generator) -> np.ndarray:
    """x mapped to `dim` dimensions by random orthonormal columns: every distance is kept, so a
    δ-selection keeps the same points (up to float32 rounding), at the cost of `dim`."""
    basis, _ = np.linalg.qr(rng.normal(size=(dim, x.shape[1])))
    out = np.empty((len(x), dim), dtype=np.float32)
    for s in range(0, len(x), 16_384):
        out[s : s + 16_384] = x[s : s + 16_384] @ basis.T.astype(np.float32)
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
