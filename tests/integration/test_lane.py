"""The unary lane (edge/lane.py) over a real socket: a `grpc.server` whose
Archive is served by a `UnaryLane`, with a servicer of the test's own."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from msgarchive import ArchiveClient
from msgarchive.v1 import archive_service_pb2 as pb
from msgarchive.v1 import archive_service_pb2_grpc as pb_grpc
from msgarchive_server.edge import servicer as servicer_module
from msgarchive_server.edge.lane import UnaryLane
from msgarchive_server.process.app import ARCHIVE_METHOD, build_server
from msgarchive_server.process.config import Settings
from msgarchive_server.stores.local import LocalStore
from tests import samples
from tests.polling import until

pytestmark = [
    pytest.mark.integration,
    # A lane thread that raises is a lane that lost a thread: fail the test.
    pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning"),
]

Behaviour = Callable[[pb.ArchiveRequest, grpc.ServicerContext], pb.ArchiveResponse]


class _Servicer(pb_grpc.ArchiveServiceServicer):  # Archive only; the rest: UNIMPLEMENTED
    def __init__(self) -> None:
        self.behaviour: Behaviour = lambda request, context: pb.ArchiveResponse(
            request_id=request.request_id
        )
        self.threads: list[str] = []

    def Archive(  # noqa: N802
        self, request: pb.ArchiveRequest, context: grpc.ServicerContext
    ) -> pb.ArchiveResponse:
        self.threads.append(threading.current_thread().name)
        return self.behaviour(request, context)


class _Tagging(grpc.ServerInterceptor):
    """Adds `tag` to the response's request_id: shows each interceptor ran, in order."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.methods: list[str] = []

    def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        self.methods.append(details.method)
        handler = continuation(details)
        if handler is None or details.method != ARCHIVE_METHOD:
            return handler
        inner = handler.unary_unary

        def tagged(request: Any, context: grpc.ServicerContext) -> Any:
            response = inner(request, context)
            response.request_id += self.tag
            return response

        return grpc.unary_unary_rpc_method_handler(
            tagged,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


class _Served:
    def __init__(self, threads: int = 4, **options: Any) -> None:
        self.servicer = _Servicer()  # type: ignore[abstract]
        self.tags = [_Tagging("+outer"), _Tagging("+inner")]
        self.interceptors: list[grpc.ServerInterceptor] = list(self.tags)
        self.server = grpc.server(
            futures.ThreadPoolExecutor(4, thread_name_prefix="pool"),
            interceptors=self.interceptors,
            options=list(options.items()),
        )
        pb_grpc.add_ArchiveServiceServicer_to_server(self.servicer, self.server)
        self.health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        lane = UnaryLane.attach(self.server, ARCHIVE_METHOD, self.interceptors, threads)
        assert lane is not None
        self.lane = lane
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        self.lane.start()
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        self.stub = pb_grpc.ArchiveServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()
        self.server.stop(None).wait()
        assert self.lane.join(30)


@pytest.fixture
def served() -> Iterator[_Served]:
    running = _Served()
    try:
        yield running
    finally:
        running.close()


def test_a_call_is_served_on_a_lane_thread_through_the_interceptors(served: _Served) -> None:
    answer = served.stub.Archive(pb.ArchiveRequest(request_id="r1"), timeout=30)
    assert answer.request_id == "r1+inner+outer"
    assert served.servicer.threads[0].startswith("lane-")
    assert all(tag.methods == [ARCHIVE_METHOD] for tag in served.tags)


def test_the_context_has_the_calls_metadata_peer_and_deadline(served: _Served) -> None:
    seen: dict[str, Any] = {}

    def look(request: pb.ArchiveRequest, context: grpc.ServicerContext) -> pb.ArchiveResponse:
        seen["metadata"] = dict(context.invocation_metadata())
        seen["peer"] = context.peer()
        seen["remaining"] = context.time_remaining()
        seen["active"] = context.is_active()
        return pb.ArchiveResponse()

    served.servicer.behaviour = look
    served.stub.Archive(
        pb.ArchiveRequest(), timeout=20, metadata=(("x-request-id", "abc"), ("k-bin", b"\x00\x01"))
    )
    assert seen["metadata"]["x-request-id"] == "abc"
    assert seen["metadata"]["k-bin"] == b"\x00\x01"
    assert seen["peer"].startswith("ipv4:127.0.0.1:")
    assert 0 < seen["remaining"] <= 21  # 20 s, give or take the two clocks
    assert seen["active"] is True


def test_metadata_the_handler_sends_reaches_the_caller(served: _Served) -> None:
    def annotate(request: pb.ArchiveRequest, context: grpc.ServicerContext) -> pb.ArchiveResponse:
        context.send_initial_metadata((("x-first", "1"),))
        context.set_trailing_metadata((("x-last", "2"),))
        return pb.ArchiveResponse(request_id="annotated")

    served.servicer.behaviour = annotate
    answer, call = served.stub.Archive.with_call(pb.ArchiveRequest(), timeout=30)
    assert answer.request_id.startswith("annotated")
    assert ("x-first", "1") in tuple(call.initial_metadata())
    assert ("x-last", "2") in tuple(call.trailing_metadata())


def test_an_abort_with_status_reaches_the_caller_whole(served: _Served) -> None:
    def refuse(request: pb.ArchiveRequest, context: grpc.ServicerContext) -> pb.ArchiveResponse:
        info = error_details_pb2.ErrorInfo(reason="INVALID_MESSAGE", domain="msgarchive.v1")
        detail = status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message="bad field")
        detail.details.add().Pack(info)
        context.abort_with_status(rpc_status.to_status(detail))
        raise AssertionError("abort returned")

    served.servicer.behaviour = refuse
    with pytest.raises(grpc.RpcError) as raised:
        served.stub.Archive(pb.ArchiveRequest(), timeout=30)
    err = raised.value
    assert err.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert err.details() == "bad field"
    status = rpc_status.from_call(err)
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert info.reason == "INVALID_MESSAGE"


def test_a_handler_that_raises_is_answered_unknown_and_the_lane_goes_on(served: _Served) -> None:
    def crash(request: pb.ArchiveRequest, context: grpc.ServicerContext) -> pb.ArchiveResponse:
        raise RuntimeError("boom")

    served.servicer.behaviour = crash
    for _ in range(10):  # more calls than threads: none of them died
        with pytest.raises(grpc.RpcError) as raised:
            served.stub.Archive(pb.ArchiveRequest(), timeout=30)
        assert raised.value.code() is grpc.StatusCode.UNKNOWN
        assert "Exception calling application: boom" in (raised.value.details() or "")
    served.servicer.behaviour = lambda request, context: pb.ArchiveResponse(request_id="ok")
    assert served.stub.Archive(pb.ArchiveRequest(), timeout=30).request_id.startswith("ok")


class _Raising(grpc.ServerInterceptor):
    def __init__(self) -> None:
        self.raising = True

    def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        if self.raising:
            raise RuntimeError("interceptor bug")
        return continuation(details)


def test_an_interceptor_that_raises_is_answered_unknown_and_the_lane_goes_on() -> None:
    raising = _Raising()
    server = grpc.server(futures.ThreadPoolExecutor(2))
    servicer = _Servicer()  # type: ignore[abstract]
    pb_grpc.add_ArchiveServiceServicer_to_server(servicer, server)
    lane = UnaryLane.attach(server, ARCHIVE_METHOD, [raising], 1)
    assert lane is not None
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    lane.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.ArchiveServiceStub(channel)
            for _ in range(3):
                with pytest.raises(grpc.RpcError) as raised:
                    stub.Archive(pb.ArchiveRequest(), timeout=30)
                assert raised.value.code() is grpc.StatusCode.UNKNOWN
                assert raised.value.details() == "Error in service handler!"
            raising.raising = False
            assert stub.Archive(pb.ArchiveRequest(request_id="ok"), timeout=30).request_id == "ok"
    finally:
        server.stop(None).wait()
        assert lane.join(30)


def test_a_request_that_does_not_parse_is_internal(served: _Served) -> None:
    raw: Any = served.channel.unary_unary(ARCHIVE_METHOD)  # bytes in, bytes out
    with pytest.raises(grpc.RpcError) as raised:
        raw(b"\xff\xff\xff", timeout=30)
    assert raised.value.code() is grpc.StatusCode.INTERNAL


def test_the_lanes_threads_serve_calls_at_once(served: _Served) -> None:
    together = threading.Barrier(4, timeout=60)

    def meet(request: pb.ArchiveRequest, context: grpc.ServicerContext) -> pb.ArchiveResponse:
        together.wait()  # breaks (and the calls fail) unless all four are in at once
        return pb.ArchiveResponse()

    served.servicer.behaviour = meet
    with futures.ThreadPoolExecutor(4) as pool:
        calls = [
            pool.submit(served.stub.Archive, pb.ArchiveRequest(), timeout=60) for _ in range(4)
        ]
        for call in calls:
            call.result()
    assert len({name for name in served.servicer.threads}) == 4


def test_other_methods_stay_grpcios(served: _Served) -> None:
    health_stub = health_pb2_grpc.HealthStub(served.channel)
    reply = health_stub.Check(health_pb2.HealthCheckRequest(), timeout=30)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.RpcError) as raised:  # registered, not implemented: grpcio's answer
        served.stub.ListArchivedMessages(pb.ListArchivedMessagesRequest(), timeout=30)
    assert raised.value.code() is grpc.StatusCode.UNIMPLEMENTED


def test_an_over_size_request_is_refused_by_the_core_and_the_lane_goes_on() -> None:
    running = _Served(threads=1, **{"grpc.max_receive_message_length": 1024})
    try:
        with pytest.raises(grpc.RpcError) as raised:
            running.stub.Archive(pb.ArchiveRequest(request_id="x" * 4096), timeout=30)
        assert raised.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        answer = running.stub.Archive(pb.ArchiveRequest(request_id="small"), timeout=30)
        assert answer.request_id.startswith("small")
    finally:
        running.close()


class _Held:
    """A behaviour that holds its call until `release` is set; `entered` is set
    once a call is in."""

    def __init__(self, answer: str = "") -> None:
        self.entered, self.release = threading.Event(), threading.Event()
        self.answer = answer

    def __call__(self, request: pb.ArchiveRequest, context: Any) -> pb.ArchiveResponse:
        self.entered.set()
        self.release.wait(60)
        return pb.ArchiveResponse(request_id=self.answer)


def test_a_caller_that_gives_up_leaves_the_lane_serving() -> None:
    running = _Served(threads=1)
    slow = _Held("late")
    release = slow.release
    try:
        running.servicer.behaviour = slow
        with pytest.raises(grpc.RpcError) as raised:
            running.stub.Archive(pb.ArchiveRequest(), timeout=0.5)
        assert raised.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
        release.set()  # the one thread sends its late answer into a call that is over
        running.servicer.behaviour = lambda request, context: pb.ArchiveResponse(request_id="next")
        assert running.stub.Archive(pb.ArchiveRequest(), timeout=30).request_id.startswith("next")
    finally:
        release.set()
        running.close()


def test_stop_with_grace_lets_a_call_in_flight_finish_then_the_threads_end() -> None:
    running = _Served(threads=2)
    held = _Held("finished")
    entered, release = held.entered, held.release
    running.servicer.behaviour = held
    with futures.ThreadPoolExecutor(1) as pool:
        call = pool.submit(running.stub.Archive, pb.ArchiveRequest(), timeout=60)
        assert entered.wait(60)
        stopped = running.server.stop(60)
        with pytest.raises(grpc.RpcError) as raised:  # taken no more
            running.stub.Archive(pb.ArchiveRequest(), timeout=30)
        assert raised.value.code() is grpc.StatusCode.UNAVAILABLE
        release.set()
        assert call.result().request_id.startswith("finished")
    assert stopped.wait(60)
    assert running.lane.join(60)
    running.channel.close()


def test_stop_without_grace_cancels_a_call_in_flight() -> None:
    running = _Served(threads=1)
    held = _Held()
    entered, release = held.entered, held.release
    running.servicer.behaviour = held
    try:
        with futures.ThreadPoolExecutor(1) as pool:
            call = pool.submit(running.stub.Archive, pb.ArchiveRequest(), timeout=60)
            assert entered.wait(60)
            running.server.stop(None)
            with pytest.raises(grpc.RpcError) as raised:
                call.result()
            assert raised.value.code() in (
                grpc.StatusCode.CANCELLED,
                grpc.StatusCode.UNAVAILABLE,
            )
            assert not running.lane.join(0.1)  # its handler is still running
            release.set()
            assert running.lane.join(60)
    finally:
        release.set()
        running.channel.close()


def test_attach_leaves_a_method_it_cannot_take_to_grpcio() -> None:
    server = grpc.server(futures.ThreadPoolExecutor(1))
    pb_grpc.add_ArchiveServiceServicer_to_server(_Servicer(), server)  # type: ignore[abstract]
    stream_method = "/msgarchive.v1.ArchiveService/ArchiveStream"
    assert UnaryLane.attach(server, stream_method, [], 1) is None
    assert UnaryLane.attach(server, "/no.Such/Method", [], 1) is None
    server.stop(None)


def test_the_sidecar_serves_archive_on_its_lane(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names: list[str] = []
    archive = servicer_module.ArchiveServicer.Archive

    def recording(self: Any, request: pb.ArchiveRequest, context: Any) -> pb.ArchiveResponse:
        names.append(threading.current_thread().name)
        return archive(self, request, context)

    monkeypatch.setattr(servicer_module.ArchiveServicer, "Archive", recording)
    sidecar = build_server(Settings(listen="127.0.0.1:0"), LocalStore(tmp_path))
    sidecar.start()
    try:
        assert ARCHIVE_METHOD in sidecar.lanes
        with ArchiveClient(f"127.0.0.1:{sidecar.port}") as client:
            ack = client.archive(samples.sms_request())
        assert (tmp_path / ack.key).exists()
        assert names
        assert names[0].startswith("archive-")
    finally:
        sidecar.stop(grace=1)


def test_stopping_while_the_lane_starts_threads_is_safe() -> None:
    """A lane thread asks the core for calls while grpcio stops and destroys the
    server: each call here starts the thread that waits for the next one, just
    as the server stops (a request that straddled the destroy was a segfault)."""
    for _ in range(200):
        running = _Served(threads=8)
        with futures.ThreadPoolExecutor(4) as pool:
            calls = [
                pool.submit(running.stub.Archive, pb.ArchiveRequest(), timeout=30) for _ in range(4)
            ]
            calls[0].exception()
            running.server.stop(None).wait()
            for call in calls:
                error = call.exception()
                if error is not None:  # cut off by the stop: never anything else
                    assert error.code() in (  # type: ignore[attr-defined]
                        grpc.StatusCode.UNAVAILABLE,
                        grpc.StatusCode.CANCELLED,
                    )
        assert running.lane.join(30)
        running.channel.close()


def _archive_sent_later(channel: grpc.Channel) -> Any:
    """Archive with its request taken from an iterator: the test says when it
    comes, or that it never does."""
    return channel.stream_unary(
        ARCHIVE_METHOD,
        request_serializer=pb.ArchiveRequest.SerializeToString,
        response_deserializer=pb.ArchiveResponse.FromString,
    )


def _once(event: threading.Event, request: Any = None) -> Iterator[Any]:
    """Once `event` is set: `request`, or (None) the end with no request at all."""
    event.wait(60)
    if request is not None:
        yield request


def test_calls_that_never_send_their_request_do_not_lock_the_lane_out() -> None:
    """Callers that open calls and send no request took every thread, and no
    real call was answered again (before the lane, not even health)."""
    running = _Served(threads=2)
    stop = threading.Event()
    hostile = _archive_sent_later(running.channel)
    try:
        with futures.ThreadPoolExecutor(4) as pool:
            held = [pool.submit(hostile, _once(stop), timeout=60) for _ in range(4)]
            # Two take both threads (waited for: the real call must not come
            # first); the lane, full, cancels a call of theirs after its
            # grace, and a thread so freed takes the real call.
            until(running.lane._starved, "the held calls did not take the threads")
            answer = running.stub.Archive(pb.ArchiveRequest(request_id="real"), timeout=30)
            assert answer.request_id.startswith("real")
            assert running.lane.cancelled >= 1
            stop.set()  # the rest close their calls without a request
            codes = [call.exception(60).code() for call in held]  # type: ignore[union-attr]
            assert codes.count(grpc.StatusCode.CANCELLED) >= 1
            assert set(codes) <= {grpc.StatusCode.CANCELLED, grpc.StatusCode.UNIMPLEMENTED}
    finally:
        stop.set()
        running.close()


def test_a_slow_request_keeps_its_thread_while_the_lane_has_others() -> None:
    running = _Served(threads=4)
    running.lane.receive_grace, running.lane.receive_slice = 0.0, 0.01
    release = threading.Event()
    slow = _archive_sent_later(running.channel)
    try:
        with futures.ThreadPoolExecutor(1) as pool:
            call = pool.submit(
                slow, _once(release, pb.ArchiveRequest(request_id="late")), timeout=60
            )
            # It looked, past its grace, five times.
            until(lambda: running.lane.slow_receives >= 5, "the lane never waited for the request")
            release.set()
            assert call.result().request_id.startswith("late")
        assert running.lane.cancelled == 0
    finally:
        release.set()
        running.close()


def test_half_open_reads_starve_neither_health_nor_archive(tmp_path: Path) -> None:
    """Calls to a read RPC that never send their request held grpcio's pool,
    and with it health checks (a probe that fails restarts the pod): each
    unary RPC now has a lane of its own."""
    settings = Settings(listen="127.0.0.1:0", max_in_flight=2, max_streams=1, threads=4)
    sidecar = build_server(settings, LocalStore(tmp_path))
    sidecar.start()
    stop = threading.Event()

    try:
        with (
            grpc.insecure_channel(f"127.0.0.1:{sidecar.port}") as channel,
            futures.ThreadPoolExecutor(24) as pool,
        ):
            hostile: Any = channel.stream_unary("/msgarchive.v1.ArchiveService/ViewMessage")
            held = [pool.submit(hostile, _once(stop), timeout=60) for _ in range(24)]
            health_stub = health_pb2_grpc.HealthStub(channel)
            reply = health_stub.Check(health_pb2.HealthCheckRequest(), timeout=30)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            with ArchiveClient(f"127.0.0.1:{sidecar.port}") as client:
                assert (tmp_path / client.archive(samples.sms_request()).key).exists()
            stop.set()
            for call in held:
                call.exception(60)
    finally:
        stop.set()
        sidecar.stop(grace=1)
