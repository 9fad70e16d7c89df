"""The ArchiveStream path through the public unit of work, with an in-memory store."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator

import pytest

from msgarchive.v1 import archive_service_pb2 as pb
from msgarchive_server.domain.accounts import Accounts
from msgarchive_server.domain.archive import Archiver
from msgarchive_server.domain.circuit import StoreCircuit
from msgarchive_server.domain.errors import Overloaded, StreamIdle
from msgarchive_server.domain.ratelimit import RateLimiter
from msgarchive_server.domain.reads import Reader
from msgarchive_server.edge.access import Access, Tenant
from msgarchive_server.edge.backpressure import InFlightLimit
from msgarchive_server.edge.calls import ArchiveCalls, Caller
from msgarchive_server.edge.streams import ArchiveStreams, JobThreads
from msgarchive_server.stores import PutResult
from msgarchive_server.telemetry.metrics import Metrics
from tests import samples
from tests.polling import until
from tests.unit.fakes import FakeStore

LOCAL = Caller(authorization="", local=True, deadline=None)
WAIT = 30.0  # generous: only a broken implementation waits this long


class HeldStore(FakeStore):
    """Each write waits until `release` is set; `entered` counts writes begun."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.entered = threading.Semaphore(0)

    def put(self, key: str, body: bytes, content_type: str = "") -> PutResult:
        self.entered.release()
        assert self.release.wait(WAIT)
        return super().put(key, body, content_type)


def calls_for(store: FakeStore, in_flight: int = 8) -> ArchiveCalls:
    tenant = Tenant(store, StoreCircuit(store), Archiver(store), Reader(store))
    access = Access(Accounts({}), {}, tenant, RateLimiter(1000))
    return ArchiveCalls(access, Metrics(), InFlightLimit(in_flight))


def stream_of(*requests: pb.ArchiveRequest) -> Iterator[pb.ArchiveStreamRequest]:
    for request in requests:
        yield pb.ArchiveStreamRequest(archive=request)


def sms(n: int, request_id: str | None = None) -> pb.ArchiveRequest:
    request = samples.sms_request(created_at_ms=samples.CREATED_AT_MS + n)
    request.request_id = str(n) if request_id is None else request_id
    return request


def metric(calls: ArchiveCalls, name: str, **labels: str) -> float:
    value = calls.metrics.registry.get_sample_value(name, labels)
    return value or 0.0


def test_every_message_gets_one_answer_matched_by_request_id() -> None:
    store = FakeStore()
    calls = calls_for(store)
    streams = ArchiveStreams(calls, window=4)
    bad = sms(2)
    bad.sms.to = "12"
    try:
        answers = list(
            streams.serve(stream_of(sms(0), sms(1), bad, sms(3, "")), LOCAL, lambda: True)
        )
    finally:
        streams.close()
    by_id = {answer.request_id: answer for answer in answers}
    assert len(answers) == 4
    assert sorted(by_id) == ["", "0", "1", "2"]
    for ok in ("0", "1"):
        assert by_id[ok].ack.key in store.objects
        assert by_id[ok].ack.request_id == ok
    invalid = by_id["2"].error
    assert (invalid.code, invalid.reason) == ("INVALID_ARGUMENT", "INVALID_MESSAGE")
    assert [v.field for v in invalid.field_violations] == ["sms.to"]
    unnamed = by_id[""].error
    assert [v.field for v in unnamed.field_violations] == ["archive.request_id"]
    assert len(store.objects) == 2
    assert (
        metric(calls, "msgarchive_archive_duration_seconds_count", channel="sms", outcome="ok") == 2
    )
    assert (
        metric(
            calls, "msgarchive_archive_failures_total", reason="INVALID_MESSAGE", store_error="-"
        )
        == 1
    )


def test_a_twin_of_a_message_in_flight_is_refused_and_the_window_holds_the_reader() -> None:
    store = HeldStore()
    calls = calls_for(store)
    streams = ArchiveStreams(calls, window=2)
    pulled: list[str] = []

    def requests() -> Iterator[pb.ArchiveStreamRequest]:
        for request in (sms(0, "a"), sms(1, "a"), sms(2, "b"), sms(3, "c"), sms(4, "d")):
            pulled.append(request.request_id)
            yield pb.ArchiveStreamRequest(archive=request)

    answers = streams.serve(requests(), LOCAL, lambda: True)
    try:
        # "a" is held in the store: its twin is answered at once, before any ack.
        twin = next(answers)
        assert twin.request_id == "a"
        assert [v.field for v in twin.error.field_violations] == ["archive.request_id"]
        assert store.entered.acquire(timeout=WAIT)  # "a" is being written
        assert store.entered.acquire(timeout=WAIT)  # and "b": the window (2) is full
        # The reader goes on to "c" and waits there for a place: it may not take "d"
        # until one frees.
        until(lambda: len(pulled) >= 4, 'the reader never went on to "c"', WAIT)
        assert pulled == ["a", "a", "b", "c"]
        store.release.set()
        rest = list(answers)
    finally:
        store.release.set()
        streams.close()
    assert sorted(answer.request_id for answer in rest) == ["a", "b", "c", "d"]
    assert all(answer.HasField("ack") for answer in rest)
    assert pulled == ["a", "a", "b", "c", "d"]
    assert metric(calls, "msgarchive_archives_in_flight") == 0


def test_the_unary_path_is_refused_when_the_bound_is_full() -> None:
    store = HeldStore()
    calls = calls_for(store, in_flight=1)
    admission = calls.admit()
    worker = threading.Thread(target=admission.run, args=(sms(0), LOCAL))
    worker.start()
    try:
        assert store.entered.acquire(timeout=WAIT)
        with pytest.raises(Overloaded) as raised:
            calls.admit()
        assert raised.value.retry_after == pytest.approx(0.05)
        assert metric(calls, "msgarchive_archives_rejected_total") == 1
        assert metric(calls, "msgarchive_archives_in_flight") == 1
    finally:
        store.release.set()
        worker.join(WAIT)
    again = calls.admit()  # the place was given back
    again.run(sms(1), LOCAL)
    again.release()  # given back once: a second release frees no other place
    calls.admit()
    with pytest.raises(Overloaded):
        calls.admit()
    assert len(store.objects) == 2


def test_a_stream_that_ends_stops_reading_and_answering() -> None:
    store = HeldStore()
    calls = calls_for(store, in_flight=1)
    streams = ArchiveStreams(calls, window=4)
    active = threading.Event()
    active.set()
    answers = streams.serve(stream_of(sms(0), sms(1), sms(2)), LOCAL, active.is_set)
    finished: list[list[pb.ArchiveStreamResponse]] = []
    consumer = threading.Thread(target=lambda: finished.append(list(answers)))
    consumer.start()
    try:
        assert store.entered.acquire(timeout=WAIT)  # "0" holds the only in-flight place
        active.clear()  # the caller cancels
        consumer.join(WAIT)
        assert not consumer.is_alive()
        assert finished == [[]]  # nobody is listening: nothing is sent
    finally:
        store.release.set()
        streams.close()
    assert len(store.objects) == 1  # what had started finishes; the rest never started


def test_refusals_count_against_the_window_so_an_unread_stream_is_held_back() -> None:
    """Messages without a request_id are refused, and their answers too wait for a
    window place: a caller that sends and never reads is not read past the window."""
    calls = calls_for(FakeStore())
    streams = ArchiveStreams(calls, window=4)
    pulled = [0]
    stop = threading.Event()

    def requests() -> Iterator[pb.ArchiveStreamRequest]:
        while not stop.is_set() and pulled[0] < 10_000:
            pulled[0] += 1
            yield pb.ArchiveStreamRequest(archive=sms(pulled[0], request_id=""))

    answers = streams.serve(requests(), LOCAL, lambda: not stop.is_set())
    try:
        first = next(answers)  # the caller reads one answer, then no more
        assert [v.field for v in first.error.field_violations] == ["archive.request_id"]
        deadline = time.monotonic() + 2.0  # long enough for an unbounded reader to run away
        while time.monotonic() < deadline and pulled[0] <= 6:
            time.sleep(0.01)
        # 4 answers waiting (the window), one read and waiting for a place, one sent.
        assert pulled[0] <= 6, f"the reader took {pulled[0]} messages past the window"
    finally:
        stop.set()
        streams.close()


def test_an_idle_stream_is_closed_once_every_message_is_answered() -> None:
    store = HeldStore()
    calls = calls_for(store)
    streams = ArchiveStreams(calls, window=4, idle_timeout=0.2)
    hold = threading.Event()

    def requests() -> Iterator[pb.ArchiveStreamRequest]:
        yield pb.ArchiveStreamRequest(archive=sms(0))
        hold.wait(WAIT)  # then the caller sends nothing

    got: queue.SimpleQueue[object] = queue.SimpleQueue()

    def consume() -> None:
        try:
            for answer in streams.serve(requests(), LOCAL, lambda: True):
                got.put(answer)
        except StreamIdle as err:
            got.put(err)

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    try:
        assert store.entered.acquire(timeout=WAIT)
        time.sleep(0.5)  # idle past the timeout, but "0" is still in flight: not closed
        assert got.empty()
        store.release.set()
        first = got.get(timeout=WAIT)
        assert isinstance(first, pb.ArchiveStreamResponse)
        assert first.ack.key in store.objects
        assert isinstance(got.get(timeout=WAIT), StreamIdle)  # then idle: closed
    finally:
        hold.set()
        store.release.set()
        consumer.join(WAIT)
        streams.close()


def test_a_message_that_cannot_start_gives_its_places_back() -> None:
    store = FakeStore()
    calls = calls_for(store, in_flight=1)
    streams = ArchiveStreams(calls, window=4)
    streams.close()  # draining: no message handed over from now on starts
    answers = list(streams.serve(stream_of(sms(0)), LOCAL, lambda: True))
    assert answers == []  # read, but never started: left unanswered
    assert store.objects == {}
    calls.admit()  # its in-flight place was given back: the only one is free


def test_a_job_that_raises_leaves_its_thread_to_the_next() -> None:
    threads = JobThreads(1, "test")
    ran = threading.Event()

    def boom() -> None:
        raise RuntimeError("boom")

    try:
        assert threads.submit(boom)
        assert threads.submit(ran.set)
        assert ran.wait(WAIT)
    finally:
        threads.close()
