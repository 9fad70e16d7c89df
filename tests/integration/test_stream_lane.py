"""ArchiveStream on its lane (edge/lane.py `StreamLane`, edge/streams.py
`ArchiveStreams.serve_lane`) over a real socket: the stream's rules as the
grpcio path keeps them (tests/unit/test_streams.py), here with every request
read and every answer sent by the lane. The store is the unit tests' held
one: the test decides when a write ends."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from structlog.testing import capture_logs

from msgarchive import ArchiveClient
from msgarchive.v1 import archive_service_pb2 as pb
from msgarchive.v1 import archive_service_pb2_grpc as pb_grpc
from msgarchive_server.edge import streams as streams_module
from msgarchive_server.edge.backpressure import StreamSlots
from msgarchive_server.edge.calls import ArchiveCalls
from msgarchive_server.edge.lane import LaneStream, StreamLane
from msgarchive_server.edge.streams import ArchiveStreams
from msgarchive_server.process.app import ARCHIVE_METHOD, ARCHIVE_STREAM_METHOD, build_server
from msgarchive_server.process.config import Settings
from msgarchive_server.stores.local import LocalStore
from tests.polling import until
from tests.unit.fakes import FakeStore
from tests.unit.test_streams import WAIT, HeldStore, calls_for, metric, sms

pytestmark = [
    pytest.mark.integration,
    # A lane thread that raises is a lane that lost a thread: fail the test.
    pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning"),
]


class _PoolServicer(pb_grpc.ArchiveServiceServicer):
    """What grpcio's pool would serve: nothing, once the lane has the method."""

    def __init__(self) -> None:
        self.streams = 0

    def ArchiveStream(self, requests: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self.streams += 1
        return iter(())


class _Served:
    """A server whose ArchiveStream is `serve` on a lane of `threads` threads."""

    def __init__(self, serve: Callable[[LaneStream], None], threads: int = 4) -> None:
        self.server = grpc.server(futures.ThreadPoolExecutor(4, thread_name_prefix="pool"))
        self.pool = _PoolServicer()  # type: ignore[abstract]
        pb_grpc.add_ArchiveServiceServicer_to_server(self.pool, self.server)
        lane = StreamLane.attach(self.server, ARCHIVE_STREAM_METHOD, serve, threads)
        assert lane is not None
        self.lane = lane
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        self.lane.start()
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        self.stub = pb_grpc.ArchiveServiceStub(self.channel)

    def stream(self, requests: Iterator[pb.ArchiveRequest], **kwargs: Any) -> Any:
        wrapped = (pb.ArchiveStreamRequest(archive=request) for request in requests)
        return self.stub.ArchiveStream(wrapped, timeout=WAIT, **kwargs)

    def close(self) -> None:
        self.channel.close()
        self.server.stop(None).wait()
        assert self.lane.join(WAIT)


class _Sidecarish:
    """The sidecar's stream path on a lane: `ArchiveStreams.serve_lane`."""

    def __init__(self, calls: ArchiveCalls, window: int, idle_timeout: float = 60.0) -> None:
        self.slots = StreamSlots(2, 2)
        self.streams = ArchiveStreams(calls, window, idle_timeout, slots=self.slots)
        self.served = _Served(self.streams.serve_lane)

    def close(self) -> None:
        self.served.close()
        self.streams.close()


def _held_requests(
    *requests: pb.ArchiveRequest, hold: threading.Event
) -> Iterator[pb.ArchiveRequest]:
    """The requests, then nothing until `hold` is set (the stream stays open)."""
    yield from requests
    hold.wait(WAIT)


def test_every_message_is_answered_by_request_id_by_the_lane() -> None:
    store = FakeStore()
    calls = calls_for(store)
    running = _Sidecarish(calls, window=4)
    bad = sms(2)
    bad.sms.to = "12"
    try:
        answers = list(running.served.stream(iter([sms(0), sms(1), bad, sms(3, "")])))
    finally:
        running.close()
    by_id = {answer.request_id: answer for answer in answers}
    assert len(answers) == 4
    assert sorted(by_id) == ["", "0", "1", "2"]
    for ok in ("0", "1"):
        assert by_id[ok].ack.key in store.objects
    assert [v.field for v in by_id["2"].error.field_violations] == ["sms.to"]
    assert [v.field for v in by_id[""].error.field_violations] == ["archive.request_id"]
    assert len(store.objects) == 2
    assert running.served.pool.streams == 0  # grpcio's pool never saw the stream
    assert running.served.lane.threads >= 1
    assert metric(calls, "msgarchive_archives_in_flight") == 0
    assert running.slots.open == 0  # its place was given back


def test_a_twin_in_flight_is_refused_at_once_and_the_window_bounds_the_writes() -> None:
    store = HeldStore()
    running = _Sidecarish(calls_for(store), window=2)
    try:
        answers = running.served.stream(
            iter([sms(0, "a"), sms(1, "a"), sms(2, "b"), sms(3, "c"), sms(4, "d")])
        )
        twin = next(answers)  # "a" is held in the store: its twin is answered at once
        assert twin.request_id == "a"
        assert [v.field for v in twin.error.field_violations] == ["archive.request_id"]
        assert store.entered.acquire(timeout=WAIT)  # "a" is being written
        assert store.entered.acquire(timeout=WAIT)  # and "b": the window (2) is full
        assert not store.entered.acquire(timeout=0.5)  # "c" waits for a place
        store.release.set()
        rest = list(answers)
    finally:
        store.release.set()
        running.close()
    assert sorted(answer.request_id for answer in rest) == ["a", "b", "c", "d"]
    assert all(answer.HasField("ack") for answer in rest)


def test_messages_wait_for_an_in_flight_place() -> None:
    store = FakeStore()
    calls = calls_for(store, in_flight=1)
    running = _Sidecarish(calls, window=4)
    held = calls.admit()  # a unary archive has the only place
    try:
        answers = running.served.stream(iter([sms(n) for n in range(5)]))
        time.sleep(0.3)  # the messages are read, and wait
        assert store.objects == {}
        held.release()
        got = list(answers)
    finally:
        held.release()
        running.close()
    assert sorted(answer.request_id for answer in got) == ["0", "1", "2", "3", "4"]
    assert all(answer.HasField("ack") for answer in got)
    assert len(store.objects) == 5
    assert metric(calls, "msgarchive_archives_rejected_total") == 0  # waited, not refused


def test_an_idle_stream_is_closed_once_every_message_is_answered() -> None:
    store = HeldStore()
    running = _Sidecarish(calls_for(store), window=4, idle_timeout=0.2)
    hold = threading.Event()
    try:
        answers = running.served.stream(_held_requests(sms(0), hold=hold))
        assert store.entered.acquire(timeout=WAIT)
        time.sleep(0.5)  # idle past the timeout, but "0" is still in flight: not closed
        assert running.slots.open == 1
        store.release.set()
        assert next(answers).ack.key in store.objects
        with pytest.raises(grpc.RpcError) as ended:
            next(answers)  # then idle: closed
    finally:
        hold.set()
        store.release.set()
        running.close()
    assert ended.value.code() is grpc.StatusCode.UNAVAILABLE
    status = rpc_status.from_call(ended.value)
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    assert any(d.Unpack(info) for d in status.details)
    assert info.reason == "STREAM_IDLE"


def test_a_cancelled_stream_gives_its_place_and_its_thread_back() -> None:
    store = HeldStore()
    calls = calls_for(store, in_flight=1)
    running = _Sidecarish(calls, window=4)
    hold = threading.Event()
    try:
        with capture_logs() as logs:
            answers = running.served.stream(_held_requests(sms(0), sms(1), hold=hold))
            assert store.entered.acquire(timeout=WAIT)  # "0" holds the only in-flight place
            answers.cancel()
            until(lambda: running.slots.open == 0, "the cancelled stream kept its place")
        store.release.set()
        until(lambda: metric(calls, "msgarchive_archives_in_flight") == 0, "a write stuck")
        # "1" never started; the lane takes the next stream.
        after = list(running.served.stream(iter([sms(2)])))
    finally:
        hold.set()
        store.release.set()
        running.close()
    assert [answer.request_id for answer in after] == ["2"]
    assert len(store.objects) == 2
    assert [(line["code"], line["answers"]) for line in logs if line["event"] == "rpc"] == [
        ("CANCELLED", 0)
    ]


def test_a_stream_handler_that_raises_is_unknown_and_an_abort_keeps_its_status() -> None:
    def serve(stream: LaneStream) -> None:
        first = stream.invocation_metadata()
        if ("mode", "raise") in first:
            raise RuntimeError("boom")
        stream.set_trailing_metadata((("why", "asked"),))
        stream.abort(grpc.StatusCode.FAILED_PRECONDITION, "not now")

    running = _Served(serve)
    try:
        with pytest.raises(grpc.RpcError) as raised:
            list(running.stream(iter(()), metadata=(("mode", "raise"),)))
        with pytest.raises(grpc.RpcError) as aborted:
            list(running.stream(iter(())))
    finally:
        running.close()
    assert raised.value.code() is grpc.StatusCode.UNKNOWN
    assert "boom" in (raised.value.details() or "")
    assert aborted.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert aborted.value.details() == "not now"
    trailing: Any = aborted.value.trailing_metadata()
    assert ("why", "asked") in tuple(trailing)


def test_answers_sent_from_other_threads_go_out_in_turn() -> None:
    """Many threads send at once: each answer is sent once, and every SENT
    event carries its own note."""
    notes: list[object] = []

    def serve(stream: LaneStream) -> None:
        senders = [
            threading.Thread(target=stream.send, args=(str(n).encode(), n)) for n in range(50)
        ]
        for sender in senders:
            sender.start()
        while len(notes) < 50:
            event = stream.next_event(WAIT)
            assert event is not None
            assert event[0] == "sent"
            notes.append(event[1])
        for sender in senders:
            sender.join()

    running = _Served(serve)
    try:
        # The answers are raw bytes here: read them undecoded.
        call: Iterator[bytes] = running.channel.stream_stream(ARCHIVE_STREAM_METHOD)(
            iter(()), timeout=WAIT
        )
        got = [bytes(answer) for answer in call]
    finally:
        running.close()
    assert sorted(got) == sorted(str(n).encode() for n in range(50))
    assert sorted(notes) == list(range(50))  # type: ignore[type-var]


def test_a_stream_lane_takes_only_a_stream_stream_method() -> None:
    server = grpc.server(futures.ThreadPoolExecutor(1))
    pb_grpc.add_ArchiveServiceServicer_to_server(_PoolServicer(), server)  # type: ignore[abstract]
    assert StreamLane.attach(server, ARCHIVE_METHOD, lambda stream: None, 1) is None
    assert StreamLane.attach(server, "/no.Such/Method", lambda stream: None, 1) is None
    server.stop(None)


@pytest.mark.parametrize("lane", [True, False], ids=["on its lane", "on grpcio's pool"])
def test_the_sidecar_serves_archive_stream(
    lane: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On its lane, and on grpcio's pool through the interceptors where this
    grpcio lacks what the lane needs: the same answers, the same summary line."""
    if not lane:
        monkeypatch.setattr(StreamLane, "attach", classmethod(lambda *args: None))
    threads: list[str] = []
    archived = streams_module._archived

    def recording(*args: Any) -> Any:
        threads.append(threading.current_thread().name)
        return archived(*args)

    monkeypatch.setattr(streams_module, "_archived", recording)
    sidecar = build_server(Settings(listen="127.0.0.1:0"), LocalStore(tmp_path))
    sidecar.start()
    try:
        assert (ARCHIVE_STREAM_METHOD in sidecar.lanes) is lane
        with capture_logs() as logs, ArchiveClient(f"127.0.0.1:{sidecar.port}") as client:
            results = list(client.archive_many([sms(0), sms(1), sms(2)]))
    finally:
        sidecar.stop(grace=1)
    assert all(result.ack is not None for result in results)
    assert all((tmp_path / result.ack.key).exists() for result in results if result.ack)
    assert len(threads) == 3
    assert all(name.startswith("stream_") for name in threads)
    rpc = [line for line in logs if line["event"] == "rpc"]
    assert len(rpc) == 1
    assert (rpc[0]["code"], rpc[0]["answers"]) == ("OK", 3)
