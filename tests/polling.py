"""Waiting in tests: poll a condition to a deadline only a hang reaches."""

from __future__ import annotations

import time
from collections.abc import Callable


def until(
    condition: Callable[[], bool],
    what: str = "not reached before the deadline",
    timeout: float = 60.0,
) -> None:
    """Return once `condition()` is true; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)
