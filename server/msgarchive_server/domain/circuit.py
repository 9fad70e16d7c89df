"""The store circuit: when archiving cannot work at all, say so at once.

Refused credentials, a missing bucket, or AccessDenied that outlasts the
retries open the circuit. While it is open, archives fail fast (the caller
gets FAILED_PRECONDITION / ARCHIVE_UNAVAILABLE instead of waiting out retries
that cannot succeed), health reports NOT_SERVING, and a background thread
probes the store with exponential backoff, reconnecting each time so that
fixed credentials are read afresh. The first probe that writes successfully
closes the circuit, and the sidecar serves again without a restart.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator

import structlog

from msgarchive_server.stores import Store, StoreError

log = structlog.get_logger("msgarchive.circuit")


def backoff(first: float, cap: float) -> Iterator[float]:
    """The longest wait before each probe: `first`, doubling, at most `cap`."""
    delay = first
    while True:
        yield delay
        delay = min(delay * 2, cap)


class StoreCircuit:
    def __init__(
        self,
        store: Store,
        on_change: Callable[[bool], None] = lambda serving: None,
        *,
        first_delay: float = 0.5,
        max_delay: float = 30.0,
        jitter: Callable[[float, float], float] = random.uniform,
    ) -> None:
        """Probes wait `jitter(d / 2, d)` seconds for each d of `backoff()`."""
        self.store = store
        self.on_change = on_change
        self.first_delay = first_delay
        self.max_delay = max_delay
        self._jitter = jitter
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._reason = ""
        self._prober: threading.Thread | None = None

    @property
    def reason(self) -> str:
        """The store error that opened the circuit; empty while it is closed."""
        return self._reason

    @property
    def is_open(self) -> bool:
        return bool(self._reason)

    def trip(self, error: StoreError) -> None:
        """Open the circuit (if closed) and start probing for recovery."""
        with self._lock:
            if self._reason or self._stopped.is_set():
                return
            self._reason = error.code
            self._prober = threading.Thread(
                target=self._probe_until_closed, name="store-probe", daemon=True
            )
            self._prober.start()
        log.error("archiving unavailable", store_error=error.code)
        self.on_change(False)

    def stop(self) -> None:
        """Stop probing (on shutdown)."""
        self._stopped.set()
        prober = self._prober
        if prober is not None:
            prober.join(timeout=5)

    def _probe_until_closed(self) -> None:
        delays = backoff(self.first_delay, self.max_delay)
        for attempt, delay in enumerate(delays, start=1):
            if self._stopped.wait(self._jitter(delay / 2, delay)):
                return
            try:
                self.store.reconnect()
                self.store.probe()
            except StoreError as err:
                log.info("store probe failed", store_error=err.code, attempt=attempt)
                continue
            except Exception:
                log.exception("store probe crashed", attempt=attempt)
                continue
            with self._lock:
                self._reason = ""
                self._prober = None
            log.info("archiving available again", attempts=attempt)
            self.on_change(True)
            return
