"""The store circuit and the rules that open it, with a scripted store."""

from __future__ import annotations

import itertools
import threading
import time

import pytest
import structlog

from msgarchive_server.domain.archive import Archiver
from msgarchive_server.domain.circuit import StoreCircuit, backoff
from msgarchive_server.domain.errors import ArchiveFailed, ArchiveUnavailable, DeadlineTooShort
from msgarchive_server.domain.retry import RetriesExhausted, RetryPolicy, opens_circuit
from msgarchive_server.stores import ErrorKind, StoreError
from tests import samples
from tests.unit.fakes import FakeStore, transient

FAST = RetryPolicy(max_retries=3, base_delay=0.001, max_delay=0.002)
DENIED = StoreError("AccessDenied", ErrorKind.DENIED)


class ProbedStore(FakeStore):
    """Probes fail until `healthy` is set; counts probes and reconnects."""

    def __init__(self) -> None:
        super().__init__()
        self.healthy = threading.Event()
        self.probed = threading.Semaphore(0)  # released once per probe
        self.probes = 0
        self.reconnects = 0

    def probe(self) -> None:
        self.probes += 1
        self.probed.release()
        if not self.healthy.is_set():
            raise StoreError("NoSuchBucket", ErrorKind.FATAL)

    def reconnect(self) -> None:
        self.reconnects += 1


def test_circuit_opens_probes_with_reconnects_and_closes() -> None:
    store = ProbedStore()
    changes: list[bool] = []
    closed = threading.Event()

    def on_change(serving: bool) -> None:
        changes.append(serving)
        if serving:
            closed.set()

    circuit = StoreCircuit(store, on_change, first_delay=0.01, max_delay=0.02)
    circuit.trip(StoreError("NoSuchBucket", ErrorKind.FATAL))
    assert circuit.is_open
    assert circuit.reason == "NoSuchBucket"
    circuit.trip(StoreError("InvalidAccessKeyId", ErrorKind.FATAL))  # already open: no-op
    assert changes == [False]
    for _ in range(2):  # it keeps probing while the store refuses
        assert store.probed.acquire(timeout=30)
    assert circuit.is_open
    store.healthy.set()
    assert closed.wait(30)
    assert not circuit.is_open
    assert changes == [False, True]
    assert store.reconnects == store.probes >= 3  # a reconnect before every probe
    circuit.stop()


def test_backoff_doubles_to_its_cap() -> None:
    assert list(itertools.islice(backoff(0.5, 30), 9)) == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]


class FlakyProbes(FakeStore):
    """Its first probes fail (a refusal, then a crash, then refusals); then it works."""

    def __init__(self, failing: int) -> None:
        super().__init__()
        self.failing = failing
        self.probes = 0

    def probe(self) -> None:
        self.probes += 1
        if self.probes == 2:
            raise RuntimeError("a bug in the probe")  # not a StoreError: probing goes on
        if self.probes <= self.failing:
            raise StoreError("NoSuchBucket", ErrorKind.FATAL)


def test_probes_wait_a_jittered_backoff_and_outlast_a_crash() -> None:
    store = FlakyProbes(failing=5)
    waits: list[tuple[float, float]] = []
    closed = threading.Event()

    def jitter(low: float, high: float) -> float:
        waits.append((low, high))
        return 0.0  # no real waiting: the schedule is what is checked

    def on_change(serving: bool) -> None:
        if serving:
            closed.set()

    circuit = StoreCircuit(store, on_change, first_delay=1, max_delay=4, jitter=jitter)
    with structlog.testing.capture_logs() as logs:
        circuit.trip(StoreError("NoSuchBucket", ErrorKind.FATAL))
        assert closed.wait(30)
    assert store.probes == 6
    assert waits == [(0.5, 1), (1, 2), (2, 4), (2, 4), (2, 4), (2, 4)]
    attempts = [line.get("attempt") for line in logs if line["event"].startswith("store probe")]
    assert attempts == [1, 2, 3, 4, 5]
    assert [line["attempts"] for line in logs if "available again" in line["event"]] == [6]
    assert not circuit.is_open
    circuit.stop()


def test_archives_fail_fast_while_open_without_touching_the_store() -> None:
    store = ProbedStore()
    circuit = StoreCircuit(store, first_delay=10)
    circuit.trip(StoreError("NoSuchBucket", ErrorKind.FATAL))
    with pytest.raises(ArchiveUnavailable) as raised:
        Archiver(store, retry=FAST, circuit=circuit).archive(samples.sms_request())
    assert (raised.value.store_error, raised.value.attempts) == ("NoSuchBucket", 0)
    assert store.calls == 0
    circuit.stop()


def test_access_denied_on_every_attempt_trips_the_circuit() -> None:
    store = FakeStore([DENIED] * 4)
    circuit = StoreCircuit(store, first_delay=10)
    with pytest.raises(ArchiveUnavailable) as raised:
        Archiver(store, retry=FAST, circuit=circuit).archive(samples.sms_request())
    assert raised.value.attempts == 4
    assert circuit.reason == "AccessDenied"
    circuit.stop()


@pytest.mark.parametrize(
    ("kinds", "opens"),
    [
        ([ErrorKind.DENIED] * 4, True),
        ([ErrorKind.TRANSIENT] * 3 + [ErrorKind.DENIED], False),
        ([ErrorKind.DENIED] * 2, False),  # cut short by a deadline
        ([ErrorKind.FATAL], True),
        ([ErrorKind.TRANSIENT] * 4, False),
    ],
)
def test_what_opens_the_circuit(kinds: list[ErrorKind], opens: bool) -> None:
    # Decided on the kind alone: the code is the store's own word.
    err = RetriesExhausted([StoreError(f"Code{n}", kind) for n, kind in enumerate(kinds)])
    assert opens_circuit(err, FAST) is opens


def test_a_deadline_nearer_than_one_attempt_starts_none() -> None:
    store = FakeStore()
    archiver = Archiver(store, retry=FAST)
    archiver.attempt_estimate = 0.5
    with pytest.raises(DeadlineTooShort):
        archiver.archive(samples.sms_request(), deadline=time.monotonic() + 0.1)
    assert store.calls == 0
    archiver.archive(samples.sms_request(), deadline=time.monotonic() + 5)
    assert store.calls == 1
    assert archiver.attempt_estimate < 0.5  # the fast write pulled the estimate down


def test_transient_failures_do_not_trip_the_circuit() -> None:
    store = FakeStore([transient()] * 4)
    circuit = StoreCircuit(store, first_delay=10)
    with pytest.raises(ArchiveFailed, match="InternalError"):
        Archiver(store, retry=FAST, circuit=circuit).archive(samples.sms_request())
    assert not circuit.is_open
