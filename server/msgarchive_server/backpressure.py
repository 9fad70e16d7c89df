"""A bound on archives in flight: beyond it, calls are refused at once.

Refusing (RESOURCE_EXHAUSTED with RetryInfo) beats queueing without limit:
the sender learns at once to slow down, and memory stays bounded.
"""

from __future__ import annotations

import threading


class InFlightLimit:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._count = 0
        self._lock = threading.Lock()

    def try_enter(self) -> bool:
        """Take a place; False when all `limit` are taken."""
        with self._lock:
            if self._count >= self.limit:
                return False
            self._count += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self._count -= 1
