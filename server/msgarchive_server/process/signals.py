"""Waiting for SIGTERM or SIGINT in a process full of threads.

The kernel hands a process-directed signal to any thread that does not block
it, often one of gRPC's. CPython's C-level handler then only flags the signal
for the main thread, and a main thread blocked in `Event.wait()` without a
timeout never looks at the flag: the sidecar would ignore SIGTERM. The C
handler also writes the signal number to the wakeup fd from whichever thread
received it, so the main thread waits on that fd instead.
"""

from __future__ import annotations

import os
import signal
from types import FrameType, TracebackType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopSignals:
    """From `__enter__` on, SIGTERM and SIGINT are caught; `wait()` blocks until
    one has arrived (also one that arrived before it was called)."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)
        self._previous_fd = -1
        self._previous_handlers: dict[int, object] = {}
        self.received: int | None = None

    def __enter__(self) -> StopSignals:
        self._previous_fd = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        for signum in STOP_SIGNALS:
            self._previous_handlers[signum] = signal.signal(signum, self._on_signal)
        return self

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # The wakeup fd already carries the number; nothing else to do here.
        return

    def wait(self) -> int:
        """The first stop signal, blocking until one arrives."""
        while self.received is None:
            for byte in os.read(self._read, 64):
                if byte in STOP_SIGNALS:
                    self.received = byte
                    break
        return self.received

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        signal.set_wakeup_fd(self._previous_fd)
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        os.close(self._read)
        os.close(self._write)
