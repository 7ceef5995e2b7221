"""Token-bucket arithmetic on an injectable clock.

Shared by the limiter actor (client side) and the emulator (server side), so both enforce
one semantics: a bucket holds at most `capacity` units and refills continuously at
`capacity / period_s` units per second. A per-minute limit of L is a bucket of capacity L
refilled over 60 s, which is how providers describe their limits.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

Clock = Callable[[], float]


@dataclass
class TokenBucket:
    """A continuously refilling bucket. Its level may go negative when usage is settled late."""

    capacity: float
    period_s: float = 60.0
    clock: Clock = time.monotonic
    level: float = field(default=-1.0)
    _t: float = field(default=-1.0, repr=False)

    def __post_init__(self) -> None:
        if self.capacity <= 0 or self.period_s <= 0:
            raise ValueError(f"bucket capacity and period must be > 0, got {self.capacity}/{self.period_s}s")
        if self.level < 0:
            self.level = self.capacity
        self._t = self.clock()

    @property
    def rate(self) -> float:
        """Refill in units per second."""
        return self.capacity / self.period_s

    def refill(self) -> float:
        now = self.clock()
        self.level = min(self.capacity, self.level + (now - self._t) * self.rate)
        self._t = now
        return self.level

    def try_take(self, amount: float) -> bool:
        """Take `amount` if the bucket holds it now."""
        if self.refill() >= amount:
            self.level -= amount
            return True
        return False

    def take(self, amount: float) -> None:
        """Take `amount` unconditionally (settling actual usage); the level may go negative."""
        self.refill()
        self.level -= amount

    def give_back(self, amount: float) -> None:
        """Return unused capacity, never above the capacity."""
        self.refill()
        self.level = min(self.capacity, self.level + amount)

    def wait_s(self, amount: float) -> float:
        """Seconds until `amount` is available (0 if it is now). Amounts over capacity wait for a full bucket."""
        need = min(amount, self.capacity) - self.refill()
        return max(need, 0.0) / self.rate

    def time_to_full_s(self) -> float:
        return max(self.capacity - self.refill(), 0.0) / self.rate

    def resize(self, capacity: float) -> None:
        """Change the capacity (and so the rate), keeping the level's share of it."""
        if capacity <= 0:
            raise ValueError(f"bucket capacity must be > 0, got {capacity}")
        share = self.refill() / self.capacity
        self.capacity = capacity
        self.level = share * capacity
