"""The schema of a run's config: OmegaConf structured dataclasses, checked by the loader.

Each stage's own settings record lives beside the stage; `RunConf.stages` is typed by the
stage registry when the config loads (`jobs/config.py`), so this layer knows no stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from actors.emulator.config import BatchBehaviour, FaultRates, LatencyModel, OutputQuirks
from actors.settings import RateLimits, field_values, require
from actors.types import Prices
from jobs.conf.batching import BatchConf

PROVIDERS = ("openai", "anthropic", "gemini")


@dataclass(frozen=True)
class LimitsConf(RateLimits):
    """An account's rate limits (None: the provider sets none we know of) and our in-flight bound.

    `max_in_flight` bounds our own clients, which no provider enforces, so the limiter and the
    emulator take only the `RateLimits` part (see `to_account_limits`, `jobs/engine/emulation.py`).
    """

    max_in_flight: int = 64
    """Most requests open at once against this account, over all clients."""

    def __post_init__(self) -> None:
        super().__post_init__()
        n = self.max_in_flight
        require(self, n >= 1, "max_in_flight", f"must be >= 1, got {n}")


@dataclass
class ModelConf:
    """One model key of the registry: where it lives, how it is billed, how it is limited."""

    provider: str = MISSING
    """Wire format: openai (also xAI, vLLM, llama.cpp and other compatible servers), anthropic, gemini."""
    model_id: str = MISSING
    """The provider's model name, sent in the request."""
    base_url: str = MISSING
    """Endpoint root, e.g. https://api.openai.com/v1 or https://api.anthropic.com."""
    api_key_env: str | None = MISSING
    """Name of the environment variable that holds the API key (the key itself is never in config);
    null for a server that takes no key, e.g. a local vLLM or llama.cpp server: no key is sent."""
    account: str | None = None
    """Account whose limits this model draws on; None gives the model an account of its own."""
    limits: LimitsConf = field(default_factory=LimitsConf)
    """Limits of the model's own account (ignored when `account` is set)."""
    prices: Prices = field(default_factory=Prices)
    params: dict[str, Any] = field(default_factory=dict)
    """Default generation parameters (temperature, max_tokens, reasoning_effort, thinking_budget, ...)."""
    timeout_s: float = 120.0
    """Client timeout of one HTTP call, seconds."""
    batch_api: bool = True
    """Whether the provider's batch API may carry this model's calls in `batch`/`auto` stages
    (false for OpenAI-compatible servers without /v1/batches, e.g. vLLM)."""


@dataclass
class AccountConf:
    limits: LimitsConf = field(default_factory=LimitsConf)


@dataclass
class EngineConf:
    """The fan-out engine: client actors, windows, retries and flushing."""

    num_clients: int = 2
    """Client actors (each one process with one aiohttp session)."""
    batch_size: int = 64
    """Requests handed to a client actor in one Ray call."""
    window_per_model: int = 1024
    """Most requests of one model dispatched and not yet stored; bounds the driver's memory."""
    max_attempts: int = 6
    """Tries per request, the first included, before it is recorded as failed."""
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    flush_rows: int = 2000
    """Results buffered before a store shard is written."""
    flush_s: float = 10.0
    """Longest time a result waits in the buffer, seconds."""
    retry_failed: bool = True
    """Retry calls whose earlier run ended as failed; paid successes are never re-sent."""
    fail_fast_after: int | None = 20
    """Stop the stage when a model has this many calls failed with an error retrying cannot
    fix (auth, a bad request) and none answered yet, as with a wrong key or model id;
    0 or null never stops. Answered calls stay stored and the same command resumes."""
    lease_margin: float = 0.97
    """Share of each rate limit the limiter aims for, leaving room for clock skew and estimates."""
    drain_timeout_s: float = 30.0
    """On SIGINT/SIGTERM, seconds in-flight calls get to finish before they are abandoned."""


@dataclass
class EmulatorConf:
    """The in-process provider emulator (a stand-in for real providers; see README).

    `faults` and `quirks` are the emulator's own records. Latency and batch behaviour keep
    flat keys: `latency_<field>` is `LatencyModel.<field>` and `batch_<field>` is
    `BatchBehaviour.<field>`, where they are documented and checked.
    """

    enabled: bool = False
    port: int = 8765
    """Fixed, because the base URL is part of every call key."""
    seed: int = 0
    latency_fixed_s: float = LatencyModel.fixed_s
    latency_per_output_token_s: float = LatencyModel.per_output_token_s
    hang_s: float = 30.0
    faults: FaultRates = field(default_factory=FaultRates)
    quirks: OutputQuirks = field(default_factory=OutputQuirks)
    limits: dict[str, LimitsConf] = field(default_factory=dict)
    """Limits the emulator enforces, by API-key environment variable name (`max_in_flight` aside)."""
    batch_delay_s: float = BatchBehaviour.delay_s
    batch_failure_rate: float = BatchBehaviour.failure_rate
    batch_expire_s: float = BatchBehaviour.expire_s

    @property
    def url(self) -> str:
        """Where the emulator listens (loopback); a model whose base URL starts with it is emulated."""
        return f"http://127.0.0.1:{self.port}"

    def latency_model(self) -> LatencyModel:
        return LatencyModel(**field_values(LatencyModel, self, prefix="latency_"))

    def batch_behaviour(self) -> BatchBehaviour:
        return BatchBehaviour(**field_values(BatchBehaviour, self, prefix="batch_"))


@dataclass
class RayConf:
    address: str | None = None
    """None starts a local Ray; "auto" joins the cluster this job runs on."""
    num_cpus: int | None = None


@dataclass
class RunConf:
    """A whole run. `specstress run CONFIG key=value ...` fills this in."""

    run_dir: str = "runs/demo"
    """Where tables, manifest and report go. Running again with the same run_dir resumes."""
    cache_dir: str | None = None
    """Call store shared across runs; None keeps it inside the run directory."""
    budget_usd: float | None = None
    """Refuse to start a stage whose estimate passes this, and stop cleanly on reaching it."""
    seed: int = 0
    pipeline: list[str] = field(default_factory=list)
    """Stages to run, in order."""
    models: dict[str, ModelConf] = field(default_factory=dict)
    accounts: dict[str, AccountConf] = field(default_factory=dict)
    engine: EngineConf = field(default_factory=EngineConf)
    batch: BatchConf = field(default_factory=BatchConf)
    """Provider batch APIs: polling, repair rounds, limits (stages choose with their `mode`)."""
    emulator: EmulatorConf = field(default_factory=EmulatorConf)
    ray: RayConf = field(default_factory=RayConf)
    stages: Any = field(default_factory=dict)
    """Per-stage settings, `stages.<name>`: each stage's own record (the stage registry builds the schema)."""
    vars: dict[str, Any] = field(default_factory=dict)
    """Free variables for interpolation in the rest of the config, e.g. `${vars.openai_base_url}`."""
