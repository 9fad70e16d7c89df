"""The retry policy on its own: how many attempts each kind of store error
gets, what a deadline allows, and what the caller is told."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from msgarchive_server.domain.errors import DeadlineTooShort
from msgarchive_server.domain.retry import (
    RetriesExhausted,
    RetryPolicy,
    opens_circuit,
    with_retries,
)
from msgarchive_server.stores import ErrorKind, StoreError

POLICY = RetryPolicy(max_retries=3, max_throttled=5, base_delay=0.0001, max_delay=0.0002)


def failing(*errors: StoreError) -> tuple[list[int], Callable[[], str]]:
    """An operation that raises `errors` in turn, then answers "stored"; and
    the count of its calls."""
    calls = [0]
    queue: Iterator[StoreError] = iter(errors)

    def operation() -> str:
        calls[0] += 1
        error = next(queue, None)
        if error is not None:
            raise error
        return "stored"

    return calls, operation


def error(kind: ErrorKind, code: str = "") -> StoreError:
    return StoreError(code or kind.name, kind)


@pytest.mark.parametrize(
    ("kind", "limit"),
    [
        (ErrorKind.TRANSIENT, POLICY.max_retries),
        (ErrorKind.DENIED, POLICY.max_retries),
        (ErrorKind.THROTTLED, POLICY.max_throttled),
    ],
)
def test_each_kind_is_retried_exactly_its_limit(kind: ErrorKind, limit: int) -> None:
    calls, operation = failing(*[error(kind)] * limit)
    assert with_retries(POLICY, None, operation) == ("stored", limit + 1)
    calls, operation = failing(*[error(kind)] * (limit + 1))
    with pytest.raises(RetriesExhausted) as raised:
        with_retries(POLICY, None, operation)
    assert raised.value.attempts == calls[0] == limit + 1


def test_the_caller_is_told_the_last_error_and_every_attempts() -> None:
    errors = [error(ErrorKind.THROTTLED, "SlowDown")] + [
        error(ErrorKind.TRANSIENT, f"Fault{n}") for n in range(POLICY.max_retries + 1)
    ]
    _, operation = failing(*errors)
    with pytest.raises(RetriesExhausted) as raised:
        with_retries(POLICY, None, operation)
    assert raised.value.error.code == f"Fault{POLICY.max_retries}"
    assert [e.code for e in raised.value.errors] == [e.code for e in errors]


def test_an_error_that_is_not_retried_ends_the_retries_where_it_comes() -> None:
    calls, operation = failing(error(ErrorKind.TRANSIENT), error(ErrorKind.REJECTED))
    with pytest.raises(RetriesExhausted) as raised:
        with_retries(POLICY, None, operation)
    assert (raised.value.error.kind, calls[0]) == (ErrorKind.REJECTED, 2)


def test_a_generous_deadline_allows_every_retry() -> None:
    _, operation = failing(*[error(ErrorKind.TRANSIENT)] * POLICY.max_retries)
    got = with_retries(POLICY, time.monotonic() + 600, operation, estimate=0.001)
    assert got == ("stored", POLICY.max_retries + 1)


def test_a_deadline_exactly_one_attempt_away_starts_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "monotonic", lambda: 100.0)
    calls, operation = failing()
    with pytest.raises(DeadlineTooShort):
        with_retries(POLICY, 100.5, operation, estimate=0.5)
    assert calls[0] == 0


@pytest.mark.parametrize(
    ("kinds", "opens"),
    [
        ([ErrorKind.DENIED] * (POLICY.max_retries + 1), True),  # refused on every attempt
        ([ErrorKind.DENIED] * POLICY.max_retries, False),  # cut short: not every attempt made
        ([ErrorKind.TRANSIENT] + [ErrorKind.DENIED] * POLICY.max_retries, False),
        ([ErrorKind.FATAL], True),
    ],
)
def test_only_a_refusal_on_every_allowed_attempt_opens_the_circuit(
    kinds: list[ErrorKind], opens: bool
) -> None:
    err = RetriesExhausted([error(kind) for kind in kinds])
    assert opens_circuit(err, POLICY) is opens
