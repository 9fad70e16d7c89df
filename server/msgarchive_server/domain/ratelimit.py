"""A per-account token bucket for the read RPCs (1000 requests a minute by default)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RateLimiter:
    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0  # tokens a second
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # account -> (tokens, when)

    def acquire(self, account: str) -> float:
        """0 when a request may go ahead now, else the seconds until one may."""
        now = self._clock()
        with self._lock:
            tokens, then = self._buckets.get(account, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - then) * self.rate)
            if tokens >= 1.0:
                self._buckets[account] = (tokens - 1.0, now)
                return 0.0
            self._buckets[account] = (tokens, now)
            return (1.0 - tokens) / self.rate
