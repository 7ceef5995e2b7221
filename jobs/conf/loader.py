"""Config schemas (OmegaConf structured dataclasses) and the loader.

The loader validates everything up front: an unknown key, a value of the wrong type, an
unknown provider or a model that names an unknown account fails with a `ConfigError`
that names the key, before any actor starts or any call is paid.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from actors.emulator.config import BatchBehaviour, FaultRates, LatencyModel, OutputQuirks
from actors.errors import ConfigError, SettingError
from actors.limiter import AccountLimits
from actors.providers import NEUTRAL_PARAMS
from actors.settings import RateLimits, field_values, require
from actors.types import Endpoint, Prices
from jobs.engine.batching.conf import BatchConf, check_batching
from jobs.stages.compliance import ComplianceConf, check_compliance
from jobs.stages.disagreement import DisagreementConf
from jobs.stages.diversity import DiversityConf
from jobs.stages.embeddings import EmbeddingsConf
from jobs.stages.judging import check_judge_settings
from jobs.stages.pairs import PairsConf
from jobs.stages.refusals import RefusalsConf
from jobs.stages.responses import ResponsesConf
from jobs.stages.rubrics import RubricsConf
from jobs.stages.scenarios import ScenariosConf
from jobs.stages.scores import ScoresConf
from jobs.stages.topics import TopicsConf
from jobs.stages.values import ValuesConf

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
    api_key_env: str = MISSING
    """Name of the environment variable that holds the API key. The key itself is never in config."""
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
class StagesConf:
    """Per-stage settings; each schema lives beside its stage."""

    pairs: PairsConf = field(default_factory=PairsConf)
    scenarios: ScenariosConf = field(default_factory=ScenariosConf)
    responses: ResponsesConf = field(default_factory=ResponsesConf)
    rubrics: RubricsConf = field(default_factory=RubricsConf)
    scores: ScoresConf = field(default_factory=ScoresConf)
    embeddings: EmbeddingsConf = field(default_factory=EmbeddingsConf)
    diversity: DiversityConf = field(default_factory=DiversityConf)
    disagreement: DisagreementConf = field(default_factory=DisagreementConf)
    topics: TopicsConf = field(default_factory=TopicsConf)
    refusals: RefusalsConf = field(default_factory=RefusalsConf)
    compliance: ComplianceConf = field(default_factory=ComplianceConf)
    values: ValuesConf = field(default_factory=ValuesConf)


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
    stages: StagesConf = field(default_factory=lambda: StagesConf())
    vars: dict[str, Any] = field(default_factory=dict)
    """Free variables for interpolation in the rest of the config, e.g. `${vars.openai_base_url}`."""


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> DictConfig:
    """Read a YAML file, first merging the files its `include:` list names (relative paths)."""
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    if path in seen:
        raise ConfigError(f"config include cycle at {path}")
    try:
        raw = OmegaConf.load(path)
    except Exception as exc:  # yaml errors come in several types
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, DictConfig):
        raise ConfigError(f"{path}: the top level must be a mapping")
    includes = raw.pop("include", [])
    merged = OmegaConf.create()
    for inc in includes:
        merged = OmegaConf.merge(merged, _read_yaml((path.parent / str(inc)).resolve(), (*seen, path)))
    return OmegaConf.merge(merged, raw)


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> RunConf:
    """Load, merge overrides (`key=value`), validate. Raises `ConfigError` naming the bad key."""
    schema = OmegaConf.structured(RunConf)
    try:
        layers = [schema]
        if path is not None:
            layers.append(_read_yaml(Path(path).resolve()))
        if overrides:
            bad = [o for o in overrides if "=" not in o]
            if bad:
                raise ConfigError(f"overrides must look like key=value, got: {', '.join(bad)}")
            layers.append(OmegaConf.from_dotlist(list(overrides)))
        merged = OmegaConf.merge(*layers)
        conf: RunConf = _to_object(merged)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None)
        msg = str(exc).splitlines()[0]
        raise ConfigError(f"config key '{key}': {msg}" if key else f"config: {msg}") from exc
    validate(conf)
    return conf


def _to_object(node: DictConfig, key: str = "") -> Any:
    """`OmegaConf.to_object` (interpolations resolved), naming the key of a record's own check.

    A settings record checks itself when built (`actors/settings.py`), and OmegaConf passes
    its `SettingError` on without the key; so on one, the children are built in turn to find
    the record that raised it. (Nodes of frozen records are read-only, which rules out
    `OmegaConf.resolve` in place; `to_object` resolves as it builds.)
    """
    try:
        return OmegaConf.to_object(node)
    except SettingError as exc:
        for name in node:
            child = node[name]
            if isinstance(child, DictConfig):
                _to_object(child, f"{key}{name}.")
        raise _keyed(exc, key) from exc


def _keyed(exc: SettingError, prefix: str) -> ConfigError:
    """`exc` as a `ConfigError` naming the config key: `prefix` (the record's key) and the field."""
    key = prefix + exc.field if exc.field else prefix.rstrip("._")
    return ConfigError(f"config key '{key}': {exc.problem}")


def _check(cond: bool, key: str, problem: str) -> None:
    if not cond:
        raise ConfigError(f"config key '{key}': {problem}")


def validate(conf: RunConf) -> None:
    """Semantic checks OmegaConf's types cannot express."""
    for key, m in conf.models.items():
        where = f"models.{key}"
        _check(
            m.provider in PROVIDERS, f"{where}.provider", f"must be one of {PROVIDERS}, got '{m.provider}'"
        )
        _check(
            m.base_url.startswith(("http://", "https://")),
            f"{where}.base_url",
            f"must start with http:// or https://, got '{m.base_url}'",
        )
        _check(bool(m.model_id.strip()), f"{where}.model_id", "must not be empty")
        _check(
            m.api_key_env.replace("_", "").isalnum() and not m.api_key_env[0].isdigit(),
            f"{where}.api_key_env",
            f"must be an environment variable name, got '{m.api_key_env}'",
        )
        _check(
            m.account is None or m.account in conf.accounts,
            f"{where}.account",
            f"names unknown account '{m.account}' (known: {sorted(conf.accounts)})",
        )
        unknown = set(m.params) - NEUTRAL_PARAMS
        _check(
            not unknown,
            f"{where}.params",
            f"unknown parameter(s) {sorted(unknown)}; known: {sorted(NEUTRAL_PARAMS)}",
        )
        _check(m.timeout_s > 0, f"{where}.timeout_s", "must be > 0")
    e = conf.engine
    for name in ("num_clients", "batch_size", "window_per_model", "max_attempts", "flush_rows"):
        _check(getattr(e, name) >= 1, f"engine.{name}", f"must be >= 1, got {getattr(e, name)}")
    _check(0 < e.lease_margin <= 1, "engine.lease_margin", f"must be in (0, 1], got {e.lease_margin}")
    _check(e.drain_timeout_s >= 0, "engine.drain_timeout_s", f"must be >= 0, got {e.drain_timeout_s}")
    _check(conf.budget_usd is None or conf.budget_usd >= 0, "budget_usd", "must be >= 0 or null")
    st = conf.stages
    refs = {
        "stages.scenarios.generators": list(st.scenarios.generators),
        "stages.scenarios.rewriter": [st.scenarios.rewriter] if st.scenarios.rewriter else [],
        "stages.responses.models": list(st.responses.models),
        "stages.rubrics.model": [st.rubrics.model],
        "stages.scores.model": [st.scores.model],
        "stages.scores.models": list(st.scores.models or []),
        "stages.embeddings.model": [st.embeddings.model]
        if st.embeddings.backend == "api" and st.embeddings.model
        else [],
        "stages.disagreement.subsets": [m for ms in (st.disagreement.subsets or {}).values() for m in ms],
        **judge_refs(st),
    }
    stages_used = set(conf.pipeline)
    for key, models in refs.items():
        if key.split(".")[1] not in stages_used:
            continue
        unknown = sorted(set(models) - set(conf.models))
        _check(not unknown, key, f"unknown model key(s) {unknown}; known: {sorted(conf.models)}")
    for name in ("topics", "refusals", "values"):
        if name in stages_used:
            check_judge_settings(name, getattr(st, name))
    if "compliance" in stages_used:
        check_compliance(st.compliance)
    try:
        conf.emulator.batch_behaviour()
    except SettingError as exc:
        raise _keyed(exc, "emulator.batch_") from exc
    check_batching(conf)


def judge_refs(st: StagesConf) -> dict[str, list[str]]:
    """Model keys the labelling stages name, by config key."""
    values_emb = st.values.embedding
    return {
        "stages.topics.model": [st.topics.model],
        "stages.refusals.model": [st.refusals.model],
        "stages.refusals.models": list(st.refusals.models or []),
        "stages.compliance.judges": list(st.compliance.judges),
        "stages.compliance.models": list(st.compliance.models or []),
        "stages.compliance.families": [m for ms in (st.compliance.families or {}).values() for m in ms],
        "stages.values.model": [st.values.model],
        "stages.values.models": list(st.values.models or []),
        "stages.values.embedding.model": [values_emb.model]
        if values_emb is not None and values_emb.backend == "api" and values_emb.model
        else [],
    }


def account_of(conf: RunConf, model_key: str) -> str:
    """The account a model draws on: its named account, or one of its own."""
    return conf.models[model_key].account or f"model:{model_key}"


def account_limits(conf: RunConf) -> dict[str, LimitsConf]:
    """Limits per account, including the implicit one-model accounts."""
    out = {name: acc.limits for name, acc in conf.accounts.items()}
    for key, m in conf.models.items():
        if m.account is None:
            out[account_of(conf, key)] = m.limits
    return out


def to_account_limits(lim: LimitsConf, margin: float) -> AccountLimits:
    """The limiter's record of an account: its `RateLimits`, aimed at `margin` of each."""
    return AccountLimits(**field_values(RateLimits, lim), margin=margin)


def endpoint(conf: RunConf, model_key: str) -> Endpoint:
    """The frozen slice of config a client needs for one model key."""
    if model_key not in conf.models:
        raise ConfigError(f"unknown model key '{model_key}' (known: {sorted(conf.models)})")
    m = conf.models[model_key]
    return Endpoint(
        model_key=model_key,
        provider=m.provider,  # type: ignore[arg-type]
        model_id=m.model_id,
        base_url=m.base_url.rstrip("/"),
        api_key_env=m.api_key_env,
        account=account_of(conf, model_key),
        prices=m.prices,
        timeout_s=m.timeout_s,
    )


def resolved_yaml(conf: RunConf) -> str:
    """The resolved config as YAML. Holds env-var names only, never their values."""
    return OmegaConf.to_yaml(OmegaConf.structured(conf))


def missing_keys(conf: RunConf, model_keys: list[str]) -> list[str]:
    """Environment variables the given models need that are unset (names only)."""
    return sorted({conf.models[k].api_key_env for k in model_keys} - set(os.environ))
