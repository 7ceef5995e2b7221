"""Per-key rate limiting, with the same token buckets the client-side limiter uses.

Requests and input tokens are charged when a request arrives; output tokens are charged
after generation on what was actually produced, so an account may go into debt and new
requests wait until its output bucket is positive again. That is how providers describe
output-token limits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from actors.buckets import Clock, TokenBucket
from actors.emulator.config import AccountLimits

LimitName = Literal["requests", "input_tokens", "output_tokens"]


@dataclass(frozen=True)
class Refusal:
    """A request over a limit: which one, and how long until it would pass."""

    limit: LimitName
    retry_after_s: float


@dataclass(frozen=True)
class BucketView:
    """One limit as the rate-limit headers report it."""

    limit: float
    remaining: float
    reset_s: float


class AccountState:
    """The buckets of one key. None for a bucket means that limit is unlimited."""

    def __init__(self, limits: AccountLimits, clock: Clock) -> None:
        def bucket(capacity: float | None) -> TokenBucket | None:
            return None if capacity is None else TokenBucket(capacity, 60.0, clock)

        self.requests = bucket(limits.rpm)
        self.input_tokens = bucket(limits.input_tpm)
        self.output_tokens = bucket(limits.output_tpm)

    def admit(self, input_tokens: int) -> Refusal | None:
        """Charge one request and its input tokens, or refuse without charging anything."""
        if self.output_tokens is not None and self.output_tokens.refill() < 1:
            return Refusal("output_tokens", self.output_tokens.wait_s(1))
        if self.requests is not None and not self.requests.try_take(1):
            return Refusal("requests", self.requests.wait_s(1))
        if self.input_tokens is not None and not self.input_tokens.try_take(input_tokens):
            if self.requests is not None:
                self.requests.give_back(1)
            return Refusal("input_tokens", self.input_tokens.wait_s(input_tokens))
        return None

    def settle_output(self, output_tokens: int) -> None:
        """Charge the tokens generated; the bucket may go negative."""
        if self.output_tokens is not None:
            self.output_tokens.take(output_tokens)

    def views(self) -> dict[LimitName, BucketView]:
        """The limited buckets as (limit, remaining, seconds to full)."""
        out: dict[LimitName, BucketView] = {}
        for name, bucket in (
            ("requests", self.requests),
            ("input_tokens", self.input_tokens),
            ("output_tokens", self.output_tokens),
        ):
            if bucket is not None:
                level = bucket.refill()
                out[name] = BucketView(bucket.capacity, max(int(level), 0), bucket.time_to_full_s())
        return out
