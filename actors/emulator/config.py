"""Emulator settings: latency, per-key limits and fault rates, as frozen dataclasses.

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
from dataclasses import dataclass, field
from types import MappingProxyType

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


@dataclass(frozen=True)
class AccountLimits:
    """Per-minute limits of one API key; None means unlimited."""

    rpm: float | None = None
    """Requests per minute."""
    input_tpm: float | None = None
    """Input tokens per minute, charged when a request arrives."""
    output_tpm: float | None = None
    """Output tokens per minute, charged on the tokens actually generated."""


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
        rates = self.as_dict()
        bad = {name: p for name, p in rates.items() if not 0.0 <= p <= 1.0}
        if bad:
            raise ValueError(f"fault rates must be in [0, 1]: {bad}")
        if sum(rates.values()) > 1.0 + 1e-9:
            raise ValueError(f"fault rates sum to {sum(rates.values()):.3f} > 1")

    def as_dict(self) -> dict[str, float]:
        return {
            "server_500": self.server_500,
            "overloaded_529": self.overloaded_529,
            "hang": self.hang,
            "reset": self.reset,
            "malformed_json": self.malformed_json,
            "truncated_body": self.truncated_body,
        }


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
        bad = {k: v for k, v in vars(self).items() if not 0.0 <= v <= 1.0}
        if bad:
            raise ValueError(f"output quirk rates must be in [0, 1]: {bad}")


@dataclass(frozen=True)
class BatchBehaviour:
    """How the emulated batch APIs behave (see actors/emulator/batches.py)."""

    delay_s: float = 2.0
    """Seconds from a batch's creation until its last item is done; items finish evenly over it."""
    failure_rate: float = 0.0
    """Probability (0..1) that a finished item is an error (HTTP 500 in the provider's shape)."""
    expire_s: float = 86_400.0
    """Items not finished this many seconds after creation expire (real providers: 24 h)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.failure_rate <= 1.0:
            raise ValueError(f"batch failure_rate must be in [0, 1], got {self.failure_rate}")
        if self.delay_s < 0 or self.expire_s <= 0:
            raise ValueError("batch delay_s must be >= 0 and expire_s > 0")


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

    def __post_init__(self) -> None:
        resolved = {resolve_account(name): limits for name, limits in self.accounts.items()}
        object.__setattr__(self, "accounts", MappingProxyType(resolved))

    def limits_for(self, fp: str) -> AccountLimits:
        """The limits of a key by its fingerprint."""
        return self.accounts.get(fp, self.default_limits)
