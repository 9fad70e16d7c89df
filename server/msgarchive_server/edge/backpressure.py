"""Bounds on archives in flight and on open streams: beyond them, refused at once.

Refusing (RESOURCE_EXHAUSTED with RetryInfo) beats queueing without limit:
the sender learns at once to slow down, and memory and threads stay bounded.
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


class StreamSlots:
    """A bound on streams open at once: in all, and per remote peer.

    Each open stream holds a thread for as long as it is open, sending or
    not (ArchiveStream one of its lane's, reflection one of grpcio's pool),
    so without a bound a caller who opens enough streams (idle ones will do)
    takes every thread, and the streams of other callers wait behind them.
    Local callers (the sidecar's own pod, on loopback or a unix socket) count
    in the total only: they all share one address, and they are the sender
    itself.
    """

    def __init__(self, limit: int, per_peer: int) -> None:
        self.limit = limit
        self.per_peer = per_peer
        self._lock = threading.Lock()
        self._open = 0
        self._by_peer: dict[str, int] = {}

    def try_open(self, peer: str, local: bool) -> str:
        """Take a place for a stream from `peer`: "" if taken, else what is full
        ("total" or "peer")."""
        with self._lock:
            if self._open >= self.limit:
                return "total"
            if not local and self._by_peer.get(peer, 0) >= self.per_peer:
                return "peer"
            self._open += 1
            if not local:
                self._by_peer[peer] = self._by_peer.get(peer, 0) + 1
            return ""

    def close(self, peer: str, local: bool) -> None:
        with self._lock:
            self._open -= 1
            if not local:
                left = self._by_peer[peer] - 1
                if left:
                    self._by_peer[peer] = left
                else:
                    del self._by_peer[peer]

    @property
    def open(self) -> int:
        return self._open
