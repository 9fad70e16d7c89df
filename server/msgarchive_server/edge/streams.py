"""ArchiveStream: many archives pipelined on one stream, concurrently up to a window.

Each request waits for a place in the stream's window and in the sidecar's
in-flight bound, and its message is then handed to the shared stream
threads. While either is full the stream stops reading, so gRPC flow control
holds the sender back instead of buffering without limit. Every request gets
exactly one answer, an ack or that message's error, in completion order, and
every answer holds a window place until it is sent, refusals included: a
caller that sends and never reads is held back after `window` messages.
A stream with nothing in flight that sends nothing for `idle_timeout`
seconds is ended (UNAVAILABLE / STREAM_IDLE), so that it frees its thread.

Two ways to serve it, with those rules alike. On its lane (`serve_lane`,
edge/lane.py), the stream's own thread reads the requests and the stream
thread that archived a message sends its answer. On grpcio's pool (`serve`,
where this grpcio lacks what a lane needs), a reader thread of the stream's
takes the requests from grpcio's iterator and the answers go back through it.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, TypeVar

import grpc
import structlog

from msgarchive.v1 import archive_service_pb2 as pb
from msgarchive.validation import FieldViolation
from msgarchive_server.domain.errors import DomainError, InvalidMessage, StreamIdle
from msgarchive_server.edge.backpressure import StreamSlots
from msgarchive_server.edge.calls import Admission, ArchiveCalls, Caller, caller_of
from msgarchive_server.edge.interceptors import StreamRecord, stream_slot
from msgarchive_server.edge.lane import RECEIVED, SENT, LaneStream
from msgarchive_server.edge.response import ack_fields, to_response
from msgarchive_server.edge.status import to_archive_error, to_status
from msgarchive_server.telemetry import tracing

if TYPE_CHECKING:
    from msgarchive_server.telemetry.spans import Span

log = structlog.get_logger("msgarchive.stream")
T = TypeVar("T")

# How often a waiting reader checks that the stream is still open.
_WAIT_SLICE = 0.25
# How often a lane stream whose next message waits for an in-flight place looks again.
_ADMIT_SLICE = 0.005


class JobThreads:
    """A fixed set of threads that run handed-over jobs: a ThreadPoolExecutor
    without the Future and bookkeeping it makes for every job."""

    def __init__(self, count: int, name: str) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[..., None], tuple[object, ...]] | None]
        self._jobs = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._run, name=f"{name}_{n}", daemon=True)
            for n in range(count)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, job: Callable[..., None], *args: object) -> bool:
        """Hand `job(*args)` over; False once closed (it will not run)."""
        with self._lock:
            if self._closed:
                return False
            self._jobs.put((job, args))
        return True

    def close(self) -> None:
        """Run the jobs already handed over, then stop the threads."""
        with self._lock:
            self._closed = True
            for _ in self._threads:
                self._jobs.put(None)
        for thread in self._threads:
            thread.join()

    def _run(self) -> None:
        while (item := self._jobs.get()) is not None:
            job, args = item
            try:
                job(*args)
            except Exception:  # a job that raises loses its message, not the thread
                log.exception("a stream job failed")


class ArchiveStreams:
    """Serves ArchiveStream calls; their messages run on one set of threads, no
    more than the in-flight bound."""

    def __init__(
        self,
        calls: ArchiveCalls,
        window: int,
        idle_timeout: float = 60.0,
        slots: StreamSlots | None = None,
    ) -> None:
        self.calls = calls
        self.window = window
        self.idle_timeout = idle_timeout
        # The bound on streams open at once; grpcio's dispatch keeps it with
        # StreamSlotsInterceptor, a lane (`serve_lane`) with this.
        self.slots = slots or StreamSlots(8, 2)
        self.threads = JobThreads(calls.in_flight.limit, "stream")

    def close(self) -> None:
        """Let the messages already handed over finish."""
        self.threads.close()

    def serve(
        self,
        requests: Iterator[pb.ArchiveStreamRequest],
        caller: Caller,
        is_active: Callable[[], bool],
    ) -> Iterator[pb.ArchiveStreamResponse]:
        """The answers to one stream's requests, as they complete.

        `is_active` says whether the call is still open (gRPC's
        `context.is_active`); once it is not, nothing more is read or sent.
        Raises StreamIdle once the stream has been idle for `idle_timeout`.
        """
        return _Stream(self, requests, caller, is_active).answers()

    def serve_lane(self, stream: LaneStream) -> None:
        """Serve one ArchiveStream call on a lane thread (edge/lane.py), doing
        what the interceptors and the servicer do on grpcio's: its record, its
        place among the open streams, the caller's check, and each message."""
        metrics = self.calls.metrics
        with (
            StreamRecord(stream.call_details, stream, metrics) as record,
            stream_slot(self.slots, metrics, stream),
        ):
            caller = caller_of(stream)
            try:
                self.calls.access.check_archiver(caller.authorization, caller.local)
                _LaneStream(self, stream, caller, record).run()
            except DomainError as err:
                structlog.contextvars.bind_contextvars(reason=err.reason_name)
                stream.abort_with_status(to_status(err))


@dataclass(frozen=True, slots=True)
class _Answer:
    """An answer to send; each holds a window place until it is sent."""

    response: pb.ArchiveStreamResponse
    pending: bool  # its request_id is among the stream's pending ones


class _Stream:
    """One ArchiveStream call: its window, the answers waiting to be sent, and
    the reader thread that takes its requests."""

    def __init__(
        self,
        streams: ArchiveStreams,
        requests: Iterator[pb.ArchiveStreamRequest],
        caller: Caller,
        is_active: Callable[[], bool],
    ) -> None:
        self.streams = streams
        self.requests = requests
        self.caller = caller
        self.is_active = is_active
        self.trace = tracing.current()  # the stream's span: each message's parent
        self.window = threading.Semaphore(streams.window)
        self.queue: queue.SimpleQueue[_Answer | None] = queue.SimpleQueue()  # None: reading ended
        self.lock = threading.Lock()
        self.pending: set[str] = set()  # request ids in flight
        self.read = 0  # requests read that are to be answered
        self.last_read = time.monotonic()

    def answers(self) -> Iterator[pb.ArchiveStreamResponse]:
        threading.Thread(target=self._read_all, name="stream-reader", daemon=True).start()
        done, answered = False, 0
        while not done or answered < self.read:
            try:
                answer = self.queue.get(timeout=_WAIT_SLICE)
            except queue.Empty:
                if not self.is_active():
                    return  # cancelled or past its deadline: nobody is listening
                idle = time.monotonic() - self.last_read
                if not done and answered == self.read and idle > self.streams.idle_timeout:
                    raise StreamIdle(self.streams.idle_timeout) from None
                continue
            if answer is None:
                done = True
                continue
            answered += 1
            if answer.pending:
                with self.lock:
                    self.pending.discard(answer.response.request_id)
            self.window.release()  # the place its message held
            yield answer.response

    # --- the reader thread ----------------------------------------------------

    def _read_all(self) -> None:
        try:
            for message in self.requests:
                if not self._take(message.archive):
                    return
        except grpc.RpcError:
            pass  # the caller went away; what was read is still answered
        finally:
            self.queue.put(None)

    def _take(self, archive: pb.ArchiveRequest) -> bool:
        """Answer one request, or hand it to a stream thread; False once the
        call has ended (it is then left unanswered)."""
        self.last_read = time.monotonic()
        request_id = archive.request_id
        with self.lock:
            problem = _request_id_problem(request_id, self.pending)
            if problem is None:
                self.pending.add(request_id)
        with _Places(self) as places:
            if not self._wait(lambda: self.window.acquire(timeout=_WAIT_SLICE)):
                return False
            places.window = True  # a refusal too waits for its place
            if problem is not None:
                refused = InvalidMessage([FieldViolation("archive.request_id", problem)])
                self.queue.put(_Answer(_refused(request_id, refused), pending=False))
                return places.handed_on()
            places.admission = self._wait(lambda: self.streams.calls.admit_within(_WAIT_SLICE))
            # The call may have ended, or the sidecar begun to drain, while the
            # places were taken: then the message does not start.
            if places.admission is None or not self.is_active():
                return False
            started = self.streams.threads.submit(
                self._archive, places.admission, request_id, archive
            )
            return started and places.handed_on()

    def _wait(self, take: Callable[[], T | None]) -> T | None:
        """What `take` gives, tried until it gives one or the call ends (None)."""
        while self.is_active():
            got = take()
            if got:
                return got
        return None

    # --- a stream thread --------------------------------------------------------

    def _archive(self, admission: Admission, request_id: str, archive: pb.ArchiveRequest) -> None:
        response = _archived(admission, self.caller, self.trace, request_id, archive)
        self.queue.put(_Answer(response, pending=True))


def _archived(
    admission: Admission,
    caller: Caller,
    trace: Span | None,
    request_id: str,
    archive: pb.ArchiveRequest,
) -> pb.ArchiveStreamResponse:
    """One stream message archived (on a stream thread): its answer."""
    # This thread's context is the message's alone (what an earlier message
    # bound is dropped here, not after each one).
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(
        request_id=request_id, method="ArchiveStream", channel=archive.WhichOneof("message")
    )
    started = time.perf_counter()
    with tracing.span("archive", {"msgarchive.request_id": request_id}, parent=trace) as span:
        try:
            ack = admission.run(archive, caller)
        except DomainError as err:
            tracing.failed(span, err.reason_name)
            response = _refused(request_id, err)
            # The stream has its own summary line; a message gets one when
            # it failed (warning), or at debug level when it was archived.
            log.warning("archive", code=response.error.code, duration_ms=_ms_since(started))
        else:
            response = pb.ArchiveStreamResponse(
                request_id=request_id, ack=to_response(request_id, ack)
            )
            log.debug("archive", code="OK", duration_ms=_ms_since(started), **ack_fields(ack))
    return response


class _LaneStream:
    """One ArchiveStream call on a lane thread, driven by the call's events.

    The same rules as `_Stream`'s, with no thread of its own: the lane thread
    asks for the next request only while the window has a place and the
    message before it has its in-flight place, so gRPC flow control holds the
    sender back; a stream thread sends each answer itself, and the window
    place is given back when the answer has been sent."""

    def __init__(
        self, streams: ArchiveStreams, stream: LaneStream, caller: Caller, record: StreamRecord
    ) -> None:
        self.streams = streams
        self.stream = stream
        self.caller = caller
        self.record = record
        self.trace = tracing.current()  # the stream's span: each message's parent
        self.places = streams.window  # free places in the window
        self.pending: set[str] = set()  # request ids in flight
        self.unanswered = 0  # requests taken whose answer is not sent yet
        self.reading = True
        self.undecodable = False
        # The message waiting for an in-flight place: nothing more is read meanwhile.
        self.waiting: tuple[str, pb.ArchiveRequest] | None = None
        self.last_read = time.monotonic()

    def run(self) -> None:
        """Until every request read is answered and the caller has sent its last;
        returns early once the call is over (nobody is listening). Raises
        StreamIdle once idle for the idle timeout."""
        stream = self.stream
        stream.receive()
        while self.reading or self.unanswered:
            if not stream.is_active():  # nobody is listening: as grpcio would log it
                gone = (
                    grpc.StatusCode.CANCELLED
                    if stream.closed
                    else grpc.StatusCode.DEADLINE_EXCEEDED
                )
                stream.set_code(gone)
                return
            event = stream.next_event(_ADMIT_SLICE if self.waiting else _WAIT_SLICE)
            if event is None:
                idle = time.monotonic() - self.last_read
                if self._idle() and idle > self.streams.idle_timeout:
                    raise StreamIdle(self.streams.idle_timeout)
            elif event[0] == RECEIVED:
                self._received(event[1])
            elif event[0] == SENT:
                self._sent(*event[1])
            if self.waiting is not None:
                self._start_waiting()
            if self.reading and self.waiting is None and self.places and not stream.receiving:
                stream.receive()
        if self.undecodable:
            stream.abort_with_status(self.record.undecodable())

    def _idle(self) -> bool:
        return self.reading and not self.unanswered and self.waiting is None

    def _received(self, raw: bytes | None) -> None:
        if raw is None:
            self.reading = False  # the caller sent its last
            return
        try:
            archive = pb.ArchiveStreamRequest.FromString(raw).archive
        except Exception:  # bad protobuf, or a string that is not UTF-8
            self.reading, self.undecodable = False, True  # answered once the rest are
            return
        self.last_read = time.monotonic()
        self.places -= 1  # a refusal too holds its place until it is sent
        self.unanswered += 1
        request_id = archive.request_id
        problem = _request_id_problem(request_id, self.pending)
        if problem is not None:
            refused = InvalidMessage([FieldViolation("archive.request_id", problem)])
            self._send(_refused(request_id, refused), request_id, pending=False)
            return
        self.pending.add(request_id)
        self.waiting = (request_id, archive)

    def _start_waiting(self) -> None:
        """Start the waiting message if an in-flight place is free."""
        assert self.waiting is not None
        admission = self.streams.calls.admit_within(0)
        if admission is None:
            return
        request_id, archive = self.waiting
        self.waiting = None
        if not self.streams.threads.submit(self._archive, admission, request_id, archive):
            admission.release()  # the sidecar is stopping: it is left unanswered
            self.reading = False
            self._free(request_id, pending=True)

    def _archive(self, admission: Admission, request_id: str, archive: pb.ArchiveRequest) -> None:
        response = _archived(admission, self.caller, self.trace, request_id, archive)
        self._send(response, request_id, pending=True)

    def _send(self, response: pb.ArchiveStreamResponse, request_id: str, *, pending: bool) -> None:
        self.stream.send(response.SerializeToString(), (request_id, pending))

    def _sent(self, request_id: str, pending: bool) -> None:
        self.record.answers += 1
        self._free(request_id, pending=pending)

    def _free(self, request_id: str, *, pending: bool) -> None:
        """A request is answered, or will not be: its places are free."""
        self.places += 1
        self.unanswered -= 1
        if pending:
            self.pending.discard(request_id)


class _Places:
    """The places one request takes: counted among those to be answered, a
    window place, and (for a message that runs) an in-flight place. Unless
    handed on (to its answer, and the message's run), all of them are given
    back when the `with` block ends: the one release path."""

    def __init__(self, stream: _Stream) -> None:
        self.stream = stream
        self.window = False
        self.admission: Admission | None = None
        self._handed_on = False

    def __enter__(self) -> _Places:
        with self.stream.lock:
            self.stream.read += 1
        return self

    def handed_on(self) -> bool:
        """The answer (and the run) hold the places now. True, for `return`."""
        self._handed_on = True
        return True

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._handed_on:
            return
        if self.admission is not None:
            self.admission.release()
        if self.window:
            self.stream.window.release()
        with self.stream.lock:
            self.stream.read -= 1  # it will not be answered


def _request_id_problem(request_id: str, pending: set[str]) -> str | None:
    if not request_id:
        return "is required on a stream: answers are matched to requests by it"
    if request_id in pending:
        return "is already in flight on this stream"
    return None


def _refused(request_id: str, err: DomainError) -> pb.ArchiveStreamResponse:
    return pb.ArchiveStreamResponse(request_id=request_id, error=to_archive_error(err))


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
