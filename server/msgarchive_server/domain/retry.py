"""The store retry policy, expressed with tenacity.

The reference archive document's FAQ asks for up to 3 retries of store errors
with exponential backoff; the README's "Errors" section says the rest:

- Transient store errors (5xx, timeouts, resets, BadDigest) and refused
  access (AccessDenied) are retried up to `max_retries` times, with
  exponential backoff and full jitter.
- Throttling (SlowDown, 503, 429) backs off the same way but does not use up
  those retries: it is handled while the caller's deadline allows, up to
  `max_throttled` retries as a last bound.
- Other errors are not retried.
- No attempt starts that cannot finish before the caller's deadline: an
  attempt is expected to take `estimate` seconds (the caller's running
  measure), and when the backoff plus that would pass the deadline, the call
  stops with the last error. When even the first attempt cannot finish in
  time, none is made.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import tenacity

from msgarchive_server.domain.errors import DeadlineTooShort
from msgarchive_server.stores import ErrorKind, StoreError
from msgarchive_server.telemetry import tracing

T = TypeVar("T")

RETRIED_KINDS = frozenset({ErrorKind.TRANSIENT, ErrorKind.DENIED, ErrorKind.THROTTLED})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_retries: int = 3
    max_throttled: int = 10
    base_delay: float = 0.05
    max_delay: float = 2.0


class RetriesExhausted(Exception):
    """The last store error, after every attempt the policy allowed."""

    def __init__(self, errors: list[StoreError]) -> None:
        self.error = errors[-1]
        super().__init__(f"{self.error.code} after {len(errors)} attempts")
        # Each attempt's error, in order.
        self.errors = errors

    @property
    def attempts(self) -> int:
        return len(self.errors)


def opens_circuit(err: RetriesExhausted, policy: RetryPolicy) -> bool:
    """Archiving cannot work: refused credentials or no bucket, or access
    refused on every attempt the policy allows."""
    if err.error.kind is ErrorKind.FATAL:
        return True
    return err.attempts > policy.max_retries and all(e.kind is ErrorKind.DENIED for e in err.errors)


class _Stop(tenacity.stop.stop_base):
    """Stop when the retries of either kind are used up or the deadline nears."""

    def __init__(self, policy: RetryPolicy, deadline: float | None, estimate: float) -> None:
        self.policy = policy
        self.deadline = deadline
        self.estimate = estimate
        self.failed = 0
        self.throttled = 0

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        if isinstance(error, StoreError) and error.kind is ErrorKind.THROTTLED:
            self.throttled += 1
        else:
            self.failed += 1
        if self.failed > self.policy.max_retries or self.throttled > self.policy.max_throttled:
            return True
        if self.deadline is None:
            return False
        next_end = time.monotonic() + (retry_state.upcoming_sleep or 0.0) + self.estimate
        return next_end >= self.deadline


def _backoff(seconds: float) -> None:
    with tracing.span("retry.wait", {"msgarchive.retry.wait_ms": round(seconds * 1000, 3)}):
        time.sleep(seconds)


def with_retries(
    policy: RetryPolicy,
    deadline: float | None,
    operation: Callable[[], T],
    estimate: float = 0.0,
) -> tuple[T, int]:
    """Run `operation` under the policy; return its result and the attempts made.

    `deadline` is a `time.monotonic()` instant, or None for no deadline;
    `estimate` is how long one attempt is expected to take, in seconds.
    Raises `RetriesExhausted` carrying the last StoreError, or
    `DeadlineTooShort` when no attempt could finish in time.
    """
    if deadline is not None and time.monotonic() + estimate >= deadline:
        raise DeadlineTooShort
    # Almost every write succeeds at once: try it before building tenacity's
    # machinery, which then starts from this first failure.
    try:
        return operation(), 1
    except StoreError as err:
        if err.kind not in RETRIED_KINDS:
            raise RetriesExhausted([err]) from None
        failed_first = [err]

    def attempt() -> T:
        if failed_first:
            raise failed_first.pop()  # counted by the stop rule as attempt 1
        return operation()

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(
            lambda e: isinstance(e, StoreError) and e.kind in RETRIED_KINDS
        ),
        stop=_Stop(policy, deadline, estimate),
        wait=tenacity.wait_random_exponential(multiplier=policy.base_delay, max=policy.max_delay),
        sleep=_backoff,
        reraise=True,
    )
    errors: list[StoreError] = []
    try:
        for each in retrying:
            with each:
                try:
                    result = attempt()
                except StoreError as err:
                    errors.append(err)
                    raise
    except StoreError:
        raise RetriesExhausted(errors) from None
    return result, len(errors) + 1
