"""Settings of the `embeddings` stage (and of the values stage's phrase embedding): backend and sizes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from actors.errors import ConfigError
from jobs.stages.settings.base import ModelView, StageSpec

BACKENDS = ("local", "api", "hashing")
TABLE = "scenario_embeddings"


@dataclass
class EmbeddingsConf:
    """Settings of the `embeddings` stage (config section `stages.embeddings`)."""

    backend: str = "local"
    """local (packaged all-MiniLM-L6-v2), api (a model key through the engine) or hashing."""
    model: str | None = None
    """For api: the registry's model key (required). Ignored by local and hashing."""
    batch_size: int = 64
    """Texts per API call (api), or rows per UDF batch (local, hashing)."""
    num_actors: int = 1
    """Ray Data actor-pool size (local, hashing)."""
    threads: int | None = None
    """Torch threads per actor (local); None leaves torch's default."""
    device: str = "cpu"
    """Torch device of the local model: cpu, or cuda (each actor then takes one GPU of the Ray cluster)."""
    cache_dir: str | None = None
    """Folder (local path or s3:// / gs:// URI) of the text-hash cache; None means `<cache_dir or run cache>/embeddings`."""


def check(ec: EmbeddingsConf, models: Mapping[str, ModelView], key: str = "stages.embeddings") -> None:
    """Checks at load; `key` is the section's config key (the values stage has one of its own)."""
    if ec.backend not in BACKENDS:
        raise ConfigError(f"config key '{key}.backend': must be one of {BACKENDS}, got '{ec.backend}'")
    if ec.batch_size < 1 or ec.num_actors < 1:
        raise ConfigError(f"config key '{key}': batch_size and num_actors must be >= 1")
    if ec.backend == "api":
        if not ec.model:
            raise ConfigError(f"config key '{key}.model': the api backend needs a model key")
        provider = models[ec.model].provider
        if provider not in ("openai", "gemini"):
            raise ConfigError(
                f"config key '{key}.model': '{ec.model}' is a {provider} model, "
                "which has no embeddings API; use an openai or gemini model key"
            )


STAGE_SPEC = StageSpec(
    name="embeddings",
    settings=EmbeddingsConf,
    reads=("scenarios",),
    writes=(TABLE,),
    models=lambda ec: {"model": [ec.model] if ec.backend == "api" and ec.model else []},
    check=check,
)
