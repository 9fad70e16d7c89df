"""ArchiveStream: many archives pipelined on one stream, concurrently up to a window.

A reader thread takes each request, waits for a place in the stream's window
and in the sidecar's in-flight bound, and hands the message to the shared
stream pool. While either is full it stops reading, so gRPC flow control
holds the sender back instead of buffering without limit. Every request gets
exactly one answer, an ack or that message's error, in completion order, and
every answer holds a window place until it is sent, refusals included: a
caller that sends and never reads is held back after `window` messages.
A stream with nothing in flight that sends nothing for `idle_timeout`
seconds is ended (UNAVAILABLE / STREAM_IDLE), so that it frees its thread.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import grpc
import structlog

from msgarchive.v1 import archive_service_pb2 as pb
from msgarchive.validation import FieldViolation
from msgarchive_server.domain.errors import BadMessage, DomainError, StreamIdle
from msgarchive_server.edge.calls import ArchiveCalls, Caller
from msgarchive_server.edge.response import ack_fields, to_response
from msgarchive_server.edge.status import to_archive_error
from msgarchive_server.telemetry import tracing

log = structlog.get_logger("msgarchive.stream")

# How often a waiting reader checks that the stream is still open.
_WAIT_SLICE = 0.25


@dataclass(frozen=True, slots=True)
class _Answer:
    """An answer to send; each holds a window place until it is sent."""

    response: pb.ArchiveStreamResponse
    pending: bool  # its request_id is among the stream's pending ones


class Workers:
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
            job(*args)


class ArchiveStreams:
    """Serves ArchiveStream calls; their messages run on one set of workers, no
    more than the in-flight bound."""

    def __init__(self, calls: ArchiveCalls, window: int, idle_timeout: float = 60.0) -> None:
        self.calls = calls
        self.window = window
        self.idle_timeout = idle_timeout
        self.workers = Workers(calls.in_flight.limit, "stream")

    def close(self) -> None:
        """Let the messages already handed over finish."""
        self.workers.close()

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
        trace = tracing.current()  # the stream's span: each message's parent
        window = threading.Semaphore(self.window)
        answers: queue.SimpleQueue[_Answer | None] = queue.SimpleQueue()  # None: reading ended
        pending: set[str] = set()
        lock = threading.Lock()
        read = [0]
        last_read = [time.monotonic()]  # when the last request came in

        def wait_for(take: threading.Semaphore | None) -> bool:
            """Take a window place (`take`) or an in-flight place; False if the call ended."""
            while is_active():
                got = (
                    take.acquire(timeout=_WAIT_SLICE)
                    if take is not None
                    else self.calls.admit_within(_WAIT_SLICE)
                )
                if got:
                    return True
            return False

        def archive_one(request_id: str, archive: pb.ArchiveRequest) -> None:
            # This worker's context is the message's alone (what an earlier
            # message bound is dropped here, not after each one).
            structlog.contextvars.clear_contextvars()
            structlog.contextvars.bind_contextvars(
                request_id=request_id,
                method="ArchiveStream",
                channel=archive.WhichOneof("message"),
            )
            started = time.perf_counter()
            with tracing.span(
                "archive", {"msgarchive.request_id": request_id}, parent=trace
            ) as span:
                try:
                    ack = self.calls.run(archive, caller)
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
                    log.debug(
                        "archive", code="OK", duration_ms=_ms_since(started), **ack_fields(ack)
                    )
            answers.put(_Answer(response, pending=True))

        def unread() -> None:
            """The call ended before this request could start: it will not be answered."""
            with lock:
                read[0] -= 1

        def reader() -> None:
            try:
                for message in requests:
                    last_read[0] = time.monotonic()
                    request_id = message.archive.request_id
                    with lock:
                        read[0] += 1
                        problem = _request_id_problem(request_id, pending)
                        if problem is None:
                            pending.add(request_id)
                    if not wait_for(window):  # a refusal too waits for its place
                        unread()
                        return
                    if problem is not None:
                        refused = BadMessage([FieldViolation("archive.request_id", problem)])
                        answers.put(_Answer(_refused(request_id, refused), pending=False))
                        continue
                    if not wait_for(None):
                        window.release()
                        unread()
                        return
                    # The call may have ended, or the sidecar begun to drain, while
                    # the places were taken: then the message does not start.
                    if not (
                        is_active()
                        and self.workers.submit(archive_one, request_id, message.archive)
                    ):
                        self.calls.release()
                        window.release()
                        unread()
                        return
            except grpc.RpcError:
                pass  # the caller went away; what was read is still answered
            finally:
                answers.put(None)

        threading.Thread(target=reader, name="stream-reader", daemon=True).start()
        done, answered = False, 0
        while not done or answered < read[0]:
            try:
                answer = answers.get(timeout=_WAIT_SLICE)
            except queue.Empty:
                if not is_active():
                    return  # cancelled or past its deadline: nobody is listening
                idle = time.monotonic() - last_read[0]
                if not done and answered == read[0] and idle > self.idle_timeout:
                    raise StreamIdle(self.idle_timeout) from None
                continue
            if answer is None:
                done = True
                continue
            answered += 1
            if answer.pending:
                with lock:
                    pending.discard(answer.response.request_id)
            window.release()
            yield answer.response


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
