"""The one retry policy for every HTTP call: online calls (the client actor) and batch control calls.

Kept in its own small module so both callers share the schedule and the classification,
rather than each growing its own loop with its own idea of what is worth another try.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from actors.errors import ProviderError


@dataclass(frozen=True)
class RetryPolicy:
    """Jittered exponential backoff, capped; a provider's retry-after is a floor.

    The wait before try `attempt + 1` is drawn uniformly from [c/2, c] with
    c = min(max_s, base_s·2^(attempt-1)) ("equal jitter": clients that failed together
    spread out, yet none comes back at once), then raised to retry-after if that is longer.
    A retry-after is honoured even past `max_s`: the provider will refuse until then anyway.
    """

    max_attempts: int = 6
    base_s: float = 1.0
    max_s: float = 60.0

    def ceiling_s(self, attempt: int) -> float:
        """The longest jittered wait after failed try `attempt` (1-based)."""
        return min(self.max_s, self.base_s * 2 ** (attempt - 1))

    def backoff_s(self, attempt: int, retry_after_s: float | None, rng: random.Random) -> float:
        """Wait before try `attempt + 1`: jitter over [c/2, c] (see the class), at least retry-after."""
        ceiling = self.ceiling_s(attempt)
        wait = rng.uniform(0.5 * ceiling, ceiling)
        return max(wait, retry_after_s or 0.0)

    def gives_up(self, err: ProviderError, attempt: int) -> bool:
        """Whether failed try `attempt` is final: the error is not transient, or no tries are left."""
        return not err.retryable or attempt >= self.max_attempts
