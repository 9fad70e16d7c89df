"""A bound on archives in flight: beyond it, unary calls are refused at once.

Refusing (RESOURCE_EXHAUSTED with RetryInfo) beats queueing without limit:
the sender learns at once to slow down, and memory stays bounded.
"""

from __future__ import annotations

import threading


class InFlightLimit:
    """Unary archives are refused when it is full; stream messages wait for a place."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._count = 0
        self._freed = threading.Condition()

    def try_enter(self) -> bool:
        """Take a place; False when all `limit` are taken."""
        return self.enter(timeout=0)

    def enter(self, timeout: float) -> bool:
        """Take a place, waiting up to `timeout` seconds for one."""
        with self._freed:
            if not self._freed.wait_for(lambda: self._count < self.limit, timeout):
                return False
            self._count += 1
            return True

    def leave(self) -> None:
        with self._freed:
            self._count -= 1
            self._freed.notify()
