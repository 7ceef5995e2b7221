"""Emulator settings: latency, per-key limits and fault rates, as frozen dataclasses.

`FaultRates` and `OutputQuirks` are also config's `emulator.faults` and `emulator.quirks`
nodes, and `LatencyModel` and `BatchBehaviour` define `emulator.latency_*` and
`emulator.batch_*` (see `actors/settings.py`), so their docstrings document those keys.

API keys never live here. `EmulatorConfig` turns each `accounts` entry into a sha256
fingerprint as soon as it is built, so a config can be printed, logged or pickled to a
thread without showing a key. An entry may name an environment variable (the same name
an `Endpoint.api_key_env` holds) or be the key itself, which is what tests do.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from types import MappingProxyType

from actors.settings import RateLimits, require, require_probabilities

FINGERPRINT_PREFIX = "sha256:"
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")


def fingerprint(api_key: str) -> str:
    """A key's stored form: "sha256:" and the hex digest. The key cannot be read back from it."""
    return FINGERPRINT_PREFIX + hashlib.sha256(api_key.encode()).hexdigest()


def fingerprint_label(fp: str) -> str:
    """The short label stats use: the digest's first 12 hex characters."""
    return fp.removeprefix(FINGERPRINT_PREFIX)[:12]


def resolve_account(name_or_key: str) -> str:
    """The fingerprint of an `accounts` entry: the value of the env var it names, else itself.

    An entry that is already a fingerprint is kept, so `dataclasses.replace` is safe.
    """
    if name_or_key.startswith(FINGERPRINT_PREFIX):
        return name_or_key
    if _ENV_NAME.match(name_or_key) and os.environ.get(name_or_key):
        return fingerprint(os.environ[name_or_key])
    return fingerprint(name_or_key)


@dataclass(frozen=True)
class LatencyModel:
    """How long an answer takes: `fixed_s + per_output_token_s * output_tokens`. Zero means no sleep."""

    fixed_s: float = 0.05
    """Seconds added to every answer."""
    per_output_token_s: float = 0.0005
    """Seconds per generated token (thinking included)."""

    def delay_s(self, output_tokens: int) -> float:
        return self.fixed_s + self.per_output_token_s * output_tokens


AccountLimits = RateLimits
"""The limits the emulator enforces on one key: a provider's, as they are (no margin)."""


@dataclass(frozen=True)
class FaultRates:
    """Probability (0..1) per request of each injected fault; they are exclusive and must sum to <= 1."""

    server_500: float = 0.0
    """HTTP 500 in the provider's error shape."""
    overloaded_529: float = 0.0
    """Anthropic 529 overloaded_error; 503 UNAVAILABLE / overloaded for Gemini and OpenAI."""
    hang: float = 0.0
    """Sleep `EmulatorConfig.hang_s`, past any sane client timeout, then answer."""
    reset: float = 0.0
    """Close the connection without a response."""
    malformed_json: float = 0.0
    """HTTP 200 whose body is not valid JSON."""
    truncated_body: float = 0.0
    """HTTP 200 whose JSON body is cut in half."""

    def __post_init__(self) -> None:
        require_probabilities(self)
        total = sum(self.as_dict().values())
        require(self, total <= 1.0 + 1e-9, None, f"rates must sum to <= 1, got {total:.3f}")

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class OutputQuirks:
    """Rates (0..1) at which task personas misbehave the way real models do, so parsers are exercised."""

    refusal: float = 0.0
    """Decline the task outright."""
    drop_tag: float = 0.0
    """Leave out the answer tag the prompt asks for."""
    truncate: float = 0.0
    """Stop mid-answer, as if max tokens were hit (finish reason: length)."""
    malformed_json: float = 0.0
    """Answer with broken JSON where JSON was asked for."""

    def __post_init__(self) -> None:
        require_probabilities(self)


@dataclass(frozen=True)
class BatchBehaviour:
    """How the emulated batch APIs behave (see actors/emulator/batches/)."""

    delay_s: float = 2.0
    """Seconds from a batch's creation until its last item is done; items finish evenly over it."""
    failure_rate: float = 0.0
    """Probability (0..1) that a finished item is an error (HTTP 500 in the provider's shape)."""
    expire_s: float = 86_400.0
    """Items not finished this many seconds after creation expire (real providers: 24 h)."""

    def __post_init__(self) -> None:
        rate = self.failure_rate
        require(self, 0.0 <= rate <= 1.0, "failure_rate", f"must be a probability in [0, 1], got {rate}")
        require(self, self.delay_s >= 0, "delay_s", f"must be >= 0, got {self.delay_s}")
        require(self, self.expire_s > 0, "expire_s", f"must be > 0, got {self.expire_s}")


@dataclass(frozen=True)
class EmulatorConfig:
    """Everything that shapes the emulator's behaviour; equal configs give equal answers."""

    seed: int = 0
    """Seeds personas and faults, so a run is reproducible."""
    latency: LatencyModel = field(default_factory=LatencyModel)
    accounts: Mapping[str, AccountLimits] = field(default_factory=dict)
    """Limits per key: env var name or key value in, sha256 fingerprints kept (see module doc)."""
    default_limits: AccountLimits = field(default_factory=AccountLimits)
    """Limits of keys not in `accounts`; unlimited by default."""
    faults: FaultRates = field(default_factory=FaultRates)
    quirks: OutputQuirks = field(default_factory=OutputQuirks)
    hang_s: float = 300.0
    """How long a "hang" fault sleeps before answering, in seconds."""
    cache_ttl_s: float = 300.0
    """Prompt-cache lifetime since last use, in seconds (Anthropic's is 5 minutes)."""
    batch: BatchBehaviour = field(default_factory=BatchBehaviour)
    unstructured_models: tuple[str, ...] = ()
    """Model ids that refuse a structured-output request (a response schema) with a 400, as
    models and servers without the feature do."""

    def __post_init__(self) -> None:
        resolved = {resolve_account(name): limits for name, limits in self.accounts.items()}
        object.__setattr__(self, "accounts", MappingProxyType(resolved))

    def limits_for(self, fp: str) -> AccountLimits:
        """The limits of a key by its fingerprint."""
        return self.accounts.get(fp, self.default_limits)
