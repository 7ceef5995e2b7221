"""Deterministic embeddings in which texts that share words lie close together.

A text's vector is the normalised sum of one fixed random Gaussian vector per distinct
lower-cased word, each seeded from the word's hash. Two texts' cosine similarity then
grows with their share of common words, which is what diversity selection and nearest
neighbour tests need, and no model is loaded.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache

import numpy as np

DEFAULT_DIM = 256
_DIMS: dict[str, int] = {
    "text-embedding-3-small": 1536,
    "text-embedding-ada-002": 1536,
    "text-embedding-3-large": 3072,
    "gemini-embedding-001": 3072,  # its default; requests may ask for 768 or 1536 (outputDimensionality)
    "text-embedding-004": 768,
}
_WORD = re.compile(r"\w+")


def embedding_dim(model_id: str) -> int:
    """The vector size a model id returns; unknown ids get `DEFAULT_DIM`."""
    return _DIMS.get(model_id.removeprefix("models/"), DEFAULT_DIM)


@lru_cache(maxsize=65536)
def _word_vector(word: str, dim: int) -> np.ndarray:
    seed = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "big")
    return np.random.default_rng(seed).standard_normal(dim)


def embed_text(text: str, dim: int) -> list[float]:
    """A unit vector of size `dim` for `text`; the empty text gets a fixed vector of its own."""
    words = set(_WORD.findall(text.lower())) or {"\x00empty"}
    total = np.sum([_word_vector(w, dim) for w in sorted(words)], axis=0)
    return np.round(total / np.linalg.norm(total), 6).tolist()
