"""Settings records: the checks they share, copying their fields, and an account's rate limits.

A settings record is a frozen dataclass that an actor uses and that `jobs/conf/loader.py` takes
as its schema node as it is (OmegaConf builds nested dataclasses, frozen ones included), so
each config key is declared, documented and checked once, on the record. A record checks
itself when built and raises `SettingError` naming the field; the config loader adds the
record's key, which gives messages like "config key 'models.o3.limits.rpm': must be > 0 or
null, got -5.0". The records hold plain values only, so they pickle into actors as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from actors.errors import SettingError


def require(record: object, ok: bool, field: str | None, problem: str) -> None:
    """Raise `SettingError` for `record`'s `field` (None: the whole record) unless `ok`."""
    if not ok:
        raise SettingError(type(record).__name__, field, problem)


def require_probabilities(record: object) -> None:
    """Every field of `record` is a probability in [0, 1]."""
    for f in fields(record):  # type: ignore[arg-type]
        value = getattr(record, f.name)
        require(record, 0.0 <= value <= 1.0, f.name, f"must be a probability in [0, 1], got {value}")


def field_values(record_type: type, source: object, prefix: str = "") -> dict[str, Any]:
    """The values of `record_type`'s fields, read from `source`'s attributes `prefix` + field name.

    Builds one record from another that holds more (config's `LimitsConf` has `max_in_flight`
    on top of `RateLimits`) or holds the fields under flat, prefixed keys (`emulator.batch_*`),
    without listing the fields again.
    """
    return {f.name: getattr(source, prefix + f.name) for f in fields(record_type)}


@dataclass(frozen=True)
class RateLimits:
    """Per-minute limits a provider sets on one account (API key); None means unlimited.

    The emulator enforces them as they are. The limiter's `AccountLimits` adds how close it
    runs to them, and config's `LimitsConf` adds `max_in_flight`, a bound on our own clients.
    """

    rpm: float | None = None
    """Requests per minute."""
    input_tpm: float | None = None
    """Input (prompt) tokens per minute, counted when a request arrives."""
    output_tpm: float | None = None
    """Output (completion) tokens per minute, counted on the tokens actually generated."""

    def __post_init__(self) -> None:
        for f in fields(RateLimits):
            value = getattr(self, f.name)
            require(self, value is None or value > 0, f.name, f"must be > 0 or null, got {value}")


def limit_seconds(
    lim: RateLimits, calls: float, input_tokens: float, output_tokens: float
) -> tuple[float, str]:
    """Seconds an account's per-minute limits need for this much work, and the limit that binds."""
    worst, why = 0.0, "none"
    for name, used, per_min in (
        ("rpm", calls, lim.rpm),
        ("input_tpm", input_tokens, lim.input_tpm),
        ("output_tpm", output_tokens, lim.output_tpm),
    ):
        if per_min and used and used / per_min * 60 > worst:
            worst, why = used / per_min * 60, name
    return worst, why
