"""Methods served start to end on threads of their own: the lanes under the sidecar's RPCs.

grpcio's synchronous server takes every call on its one polling thread and
hands each step of it to a pool thread and back: the call's arrival, its
request message, its status. Each hand-off between two threads that both want
the GIL is a sleep and a wake-up, and for a unary archive they cost more than
everything the sidecar does (docs/benchmarks.md, "The concurrency model").

A lane serves one method of a `grpc.server` without them. Each of its threads
has a completion queue of its own, registered with the server's core before
it starts; a thread asks the core for the next call of the method on its
queue and serves it, waiting on its own queue each time. A `UnaryLane` reads
the request, runs the handler (with the server's interceptors, as grpcio
would) and sends the answer. A `StreamLane` hands each stream to a function
that drives it by its events (`LaneStream`): requests read one at a time,
answers sent from any thread. Everything else stays grpcio's: the other
methods, reflection and health's Watch, the port, credentials, message size
limits, and shutdown with its grace (the core fails a lane's waiting request
when the server shuts down, and `grpc.Server.stop`'s cancel reaches the
lane's calls).

It uses grpcio's core binding (`grpc._cython.cygrpc`), the calls grpcio's own
server makes. `attach` checks that they are there and returns None otherwise,
and grpcio then serves the method itself, as before.
"""

from __future__ import annotations

import collections
import contextlib
import math
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
import structlog

try:
    from grpc._cython import cygrpc  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover (every grpcio wheel has it)
    cygrpc = None

if TYPE_CHECKING:
    Handler = grpc.RpcMethodHandler[Any, Any]

log = structlog.get_logger("msgarchive.lane")


# What the core binding must offer, each used as grpcio's server uses it.
_CORE_NEEDS = {
    "Server": ("register_completion_queue", "register_method", "request_registered_call"),
    "CompletionQueue": ("poll",),
    "CompletionType": ("queue_shutdown", "queue_timeout"),
}
_OPERATIONS = (
    "ReceiveMessageOperation",
    "SendInitialMetadataOperation",
    "SendMessageOperation",
    "SendStatusFromServerOperation",
    "ReceiveCloseOnServerOperation",
)


def _core_has_all() -> bool:
    if cygrpc is None:
        return False
    for kind, methods in _CORE_NEEDS.items():
        if not all(hasattr(getattr(cygrpc, kind, None), name) for name in methods):
            return False
    return all(hasattr(cygrpc, name) for name in _OPERATIONS)


class _CallDetails:
    """What interceptors see of a call (grpc.HandlerCallDetails' two fields)."""

    __slots__ = ("invocation_metadata", "method")

    def __init__(self, method: str, invocation_metadata: Any) -> None:
        self.method = method
        self.invocation_metadata = invocation_metadata


class _Aborted(Exception):
    """Raised by `abort`: the handler's call ends with the status set on the context."""


class LaneContext(grpc.ServicerContext):
    """The `ServicerContext` of a lane call, as grpcio's behaves for a unary call.

    One difference: the lane learns that the caller cancelled only when it sends
    the answer, so `is_active` is False once the call is answered or its
    deadline has passed, not the moment the caller hangs up."""

    def __init__(self, event: Any, queue: Any) -> None:
        self._event = event
        self._queue = queue
        self._code: grpc.StatusCode | None = None
        self._details: str | None = None
        self._trailing: tuple[tuple[str, str | bytes], ...] | None = None
        self._initial_sent = False
        self._callbacks: list[Callable[[], None]] = []
        self.finished = False

    # --- what the call is ------------------------------------------------------

    def invocation_metadata(self) -> tuple[tuple[str, str | bytes], ...]:
        metadata: tuple[tuple[str, str | bytes], ...] = self._event.invocation_metadata
        return metadata

    def peer(self) -> str:
        peer: bytes = self._event.call.peer()
        return peer.decode("utf-8", "replace")

    def peer_identities(self) -> Iterable[bytes] | None:
        identities: Iterable[bytes] | None = cygrpc.peer_identities(self._event.call)
        return identities

    def peer_identity_key(self) -> str | None:
        key: bytes | None = cygrpc.peer_identity_key(self._event.call)
        return None if key is None else key.decode("utf-8", "replace")

    def auth_context(self) -> dict[str, Any]:
        context: dict[bytes, Any] = cygrpc.auth_context(self._event.call)
        return {key.decode("utf-8", "replace"): value for key, value in context.items()}

    def time_remaining(self) -> float:
        deadline: float = self._event.call_details.deadline
        return max(deadline - time.time(), 0.0)

    def is_active(self) -> bool:
        return not self.finished and self.time_remaining() > 0

    # --- the answer --------------------------------------------------------------

    def set_code(self, code: grpc.StatusCode) -> None:
        self._code = code

    def set_details(self, details: str) -> None:
        self._details = details

    def set_trailing_metadata(self, trailing_metadata: Any) -> None:
        self._trailing = tuple(trailing_metadata or ())

    def code(self) -> grpc.StatusCode | None:
        return self._code

    def details(self) -> str | None:
        return self._details

    def trailing_metadata(self) -> tuple[tuple[str, str | bytes], ...]:
        return self._trailing or ()

    def abort(self, code: grpc.StatusCode, details: str) -> Any:
        if code is grpc.StatusCode.OK:  # as grpcio: OK is no way to abort
            code = grpc.StatusCode.UNKNOWN
        self._code, self._details = code, details
        raise _Aborted

    def abort_with_status(self, status: grpc.Status) -> Any:
        self.set_trailing_metadata(status.trailing_metadata)
        self.abort(status.code, status.details)

    def send_initial_metadata(self, initial_metadata: Any) -> None:
        if self._initial_sent or self.finished:
            raise ValueError("initial metadata was already sent")
        self._initial_sent = True
        operation = cygrpc.SendInitialMetadataOperation(tuple(initial_metadata), 0)
        _run_batch(self._queue, self._event.call, (operation,))

    def add_callback(self, callback: Callable[[], None]) -> bool:
        if self.finished:
            return False
        self._callbacks.append(callback)
        return True

    def cancel(self) -> bool:
        self._event.call.cancel()
        return True

    # --- the lane's side ---------------------------------------------------------

    def finish(self, body: bytes | None) -> None:
        """Send the answer: the response `body` with OK, or the status set."""
        code = self._code or grpc.StatusCode.OK
        details = (self._details or "").encode("utf-8")
        operations = [cygrpc.ReceiveCloseOnServerOperation(0)]
        if not self._initial_sent:
            operations.append(cygrpc.SendInitialMetadataOperation(None, 0))
        if body is not None and code is grpc.StatusCode.OK:
            operations.append(cygrpc.SendMessageOperation(body, 0))
        operations.append(
            cygrpc.SendStatusFromServerOperation(self._trailing, code.value[0], details, 0)
        )
        _run_batch(self._queue, self._event.call, tuple(operations))
        self.finished = True
        for callback in self._callbacks:
            callback()


def _run_batch(queue: Any, call: Any, operations: tuple[Any, ...]) -> Any:
    """Start a batch of `operations` on `call` and wait for its event."""
    tag = object()
    call.start_server_batch(operations, tag)
    return _wait(queue, tag)


def _wait(queue: Any, tag: object, timeout: float | None = None) -> Any:
    """The event of the request or batch whose tag is `tag` (an object of its
    own), or None once `timeout` seconds have passed without it. A lane thread
    has one outstanding on its queue at a time, so the next event is that one,
    unless a call failed half way and left one behind: that one is skipped,
    and no event of another call can pass for this one's."""
    deadline = None if timeout is None else time.time() + timeout
    while True:
        event = queue.poll(deadline)
        if event.tag is tag:
            return event
        if event.completion_type == cygrpc.CompletionType.queue_timeout:
            return None
        if event.completion_type == cygrpc.CompletionType.queue_shutdown:
            raise RuntimeError("the lane's completion queue was shut down")


@dataclass(frozen=True, slots=True)
class _Claim:
    """A method of a `grpc.server` that a lane may take from grpcio's dispatch."""

    core: Any  # the server's core (cygrpc.Server)
    core_lock: Any  # grpcio's lock over it
    method: str
    handler: Handler
    handlers: dict[str, Handler]  # grpcio's registered methods

    def take(self) -> None:
        # grpcio asks the core for calls of each method in this dict; from now
        # on only the lane's threads ask for this one.
        del self.handlers[self.method]


def _claim(server: grpc.Server, method: str, kind: str) -> _Claim | None:
    """`method` of `server`, if its handler has `kind` (unary_unary,
    stream_stream); None (left to grpcio) if this grpcio lacks what a lane
    needs or `method` is not registered so."""
    state = getattr(server, "_state", None)
    core = getattr(server, "_cy_server", None)
    handlers = getattr(state, "registered_method_handlers", None)
    core_lock = getattr(state, "lock", None)
    if core is None or core_lock is None or not isinstance(handlers, dict):
        return None
    handler = handlers.get(method)
    if not _core_has_all() or handler is None or getattr(handler, kind, None) is None:
        return None
    return _Claim(core, core_lock, method, handler, handlers)


class _Lane:
    """Threads of a lane, each with a completion queue of its own, each taking
    one call of `method` at a time from the server's core: `_call` serves it.

    Threads are started as calls need them: whenever the last one waiting for
    a call takes one, another starts, so there is always one waiting, and as
    many as the most calls that were ever served at once (plus one) stay. A
    waiting thread wakes five times a second (grpcio's binding checks for
    signals), so threads nobody needs are not started.

    `attach` before the server starts, `start` after it; stopping is the
    server's (`join` waits for the lane's calls to end)."""

    def __init__(self, core: Any, core_lock: Any, method: str, threads: int, name: str) -> None:
        self._core = core
        self._core_lock = core_lock
        self.method = method
        self.name = name
        # Every queue must be registered before the server starts; a thread
        # takes one when it starts.
        self._unused = [cygrpc.CompletionQueue() for _ in range(threads)]
        for queue in self._unused:
            core.register_completion_queue(queue)
        self._lock = threading.Lock()
        self._waiting = 0  # threads waiting for a call
        self._threads: list[threading.Thread] = []

    @property
    def threads(self) -> int:
        """How many threads have started."""
        with self._lock:
            return len(self._threads)

    def start(self) -> None:
        with self._lock:
            self._start_one()

    def join(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the threads to end (they end once the
        server has stopped and their call, if any, is done); True if all did."""
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(deadline - time.monotonic(), 0.0))
        return not any(thread.is_alive() for thread in threads)

    def _start_one(self) -> None:
        """Start a thread on an unused queue, if one is left (holding the lock)."""
        if not self._unused:
            return
        self._waiting += 1
        name = f"{self.name}-{len(self._threads)}"
        thread = threading.Thread(
            target=self._serve, args=(self._unused.pop(),), name=name, daemon=True
        )
        self._threads.append(thread)
        thread.start()

    def _serve(self, queue: Any) -> None:
        while True:
            tag = object()
            if not self._request(queue, tag):
                return
            event = _wait(queue, tag)
            if not event.success:  # the core failed the request: the server shut down
                return
            with self._lock:
                self._waiting -= 1
                if self._waiting == 0:
                    self._start_one()  # the next call has a thread waiting for it
            try:
                self._call(event, queue)
            except Exception:  # the binding refused a batch: this call is lost, not the thread
                log.exception("a lane call failed", method=self.method)
                with contextlib.suppress(Exception):  # the caller hears it now, not at its deadline
                    event.call.cancel()
            with self._lock:
                self._waiting += 1

    def _call(self, event: Any, queue: Any) -> None:
        raise NotImplementedError

    def _request(self, queue: Any, tag: object) -> bool:
        """Ask the core for the next call on `queue`, its event tagged `tag`;
        False once the server is shutting down. Under grpcio's server lock:
        grpcio destroys the core server holding it, and the binding's check
        that the server is not shutting down, then the request, must not
        straddle that."""
        with self._core_lock:
            try:
                self._core.request_registered_call(queue, queue, self.method, tag)
            except ValueError:  # the binding's check: the server is shutting down
                return False
        return True


class UnaryLane(_Lane):
    """Serves one unary-unary method of a `grpc.server` on up to `threads`
    threads of its own, each call on one thread from its arrival to its answer.

    A call holds its thread from its arrival, before its request has come.
    Callers that open calls and never send the request (hostile, or stuck)
    could so take every thread: once none waits for a call and none can
    start, a call whose request has not come after `receive_grace` seconds
    is cancelled, so that its thread takes the next call. Real callers send
    the request with the call's headers."""

    receive_grace = 0.25  # seconds a request may take to come while the lane is full
    receive_slice = 0.05  # how often a thread waiting for one looks

    def __init__(
        self,
        core: Any,
        core_lock: Any,
        method: str,
        handler: Handler,
        interceptors: Sequence[grpc.ServerInterceptor],
        threads: int,
        name: str,
    ) -> None:
        super().__init__(core, core_lock, method, threads, name)
        self._handler = handler
        self._interceptors = tuple(interceptors)
        self.cancelled = 0  # calls cancelled for holding a thread without a request
        self.slow_receives = 0  # times a thread looked again for a request not yet come
        self._unwarned = 0
        self._warned_at = -math.inf

    @classmethod
    def attach(
        cls,
        server: grpc.Server,
        method: str,
        interceptors: Sequence[grpc.ServerInterceptor],
        threads: int,
        name: str = "lane",
    ) -> UnaryLane | None:
        """Take `method` (registered on `server` by its generated `add_*_to_server`)
        from grpcio's dispatch to a lane; None, leaving it to grpcio, if this
        grpcio lacks what the lane needs or the method is not a registered
        unary-unary one."""
        claim = _claim(server, method, "unary_unary")
        if claim is None:
            return None
        lane = cls(claim.core, claim.core_lock, method, claim.handler, interceptors, threads, name)
        claim.take()
        return lane

    def _receive(self, call: Any, queue: Any) -> bytes | None:
        """The call's request, or None: the caller sent none (it hung up, or
        closed the call without one), or it was cancelled for holding a thread
        without sending one while the lane had none to spare."""
        tag = object()
        call.start_server_batch((cygrpc.ReceiveMessageOperation(0),), tag)
        started = time.monotonic()
        cancelled = False
        while (event := _wait(queue, tag, self.receive_slice)) is None:
            self.slow_receives += 1
            waited = time.monotonic() - started
            if not cancelled and waited >= self.receive_grace and self._starved():
                cancelled = True
                call.cancel()  # the receive then ends, without a request
                self._count_cancelled()
        message: bytes | None = event.batch_operations[0].message()
        return message

    def _starved(self) -> bool:
        """True while no thread waits for a call and none can start."""
        with self._lock:
            return self._waiting == 0 and not self._unused

    def _count_cancelled(self) -> None:
        """Count a call cancelled for its missing request; warn at most once a minute."""
        with self._lock:
            self.cancelled += 1
            self._unwarned += 1
            now = time.monotonic()
            if now - self._warned_at < 60:
                return
            self._warned_at, count, self._unwarned = now, self._unwarned, 0
        log.warning(
            "calls that sent no request cancelled: every lane thread was taken",
            method=self.method,
            calls=count,
            after_seconds=self.receive_grace,
        )

    def _handler_for(self, details: _CallDetails) -> Handler | None:
        """The method's handler wrapped by the interceptors, outermost first."""
        handler: Handler | None = self._handler
        for interceptor in reversed(self._interceptors):
            handler = interceptor.intercept_service(_returning(handler), details)
        return handler

    def _call(self, event: Any, queue: Any) -> None:
        context = LaneContext(event, queue)
        raw = self._receive(event.call, queue)
        context.finish(self._answer(event, raw, context))

    def _answer(self, event: Any, raw: bytes | None, context: LaneContext) -> bytes | None:
        """The response to send, or None with the call's error set on `context`."""
        try:
            handler = self._handler_for(_CallDetails(self.method, event.invocation_metadata))
        except Exception:  # as grpcio answers an interceptor that raises
            log.exception("a lane interceptor raised", method=self.method)
            _failed(context, grpc.StatusCode.UNKNOWN, "Error in service handler!")
            return None
        if handler is None or handler.unary_unary is None:
            _failed(context, grpc.StatusCode.UNIMPLEMENTED, "Method not found!")
            return None
        if raw is None:  # the caller hung up, or closed the call without a request
            missing = f'"{self.method}" requires exactly one request message.'
            _failed(context, grpc.StatusCode.UNIMPLEMENTED, missing)
            return None
        return _respond(handler, raw, context)


def _returning(handler: Handler | None) -> Callable[[grpc.HandlerCallDetails], Handler | None]:
    """An interceptor's continuation: the next handler inward."""
    return lambda _details: handler


def _respond(handler: Handler, raw: bytes, context: LaneContext) -> bytes | None:
    """The serialized response, or None with the call's error set on `context`:
    an abort's status, UNKNOWN for anything else the handler raised, INTERNAL
    for a request or response that does not (de)serialize, as grpcio answers."""
    parse, serialize = handler.request_deserializer, handler.response_serializer
    try:
        request = parse(raw) if parse is not None else raw
    except Exception:
        _failed(context, grpc.StatusCode.INTERNAL, "Exception deserializing request!")
        return None
    try:
        assert handler.unary_unary is not None
        response = handler.unary_unary(request, context)
    except _Aborted:
        return None
    except Exception as err:
        if context.code() in (None, grpc.StatusCode.OK):
            _failed(context, grpc.StatusCode.UNKNOWN, f"Exception calling application: {err}")
        return None
    try:
        body: bytes = serialize(response) if serialize is not None else response
    except Exception:
        _failed(context, grpc.StatusCode.INTERNAL, "Failed to serialize response!")
        return None
    return body


def _failed(context: LaneContext, code: grpc.StatusCode, details: str) -> None:
    context.set_code(code)
    context.set_details(details)


# What `LaneStream.next_event` gives: (RECEIVED, the request's bytes, or None
# once the caller has sent its last), (SENT, the note given with the answer,
# False if the call broke before it was sent), or (CLOSED, None): the caller
# cancelled, or its deadline passed.
RECEIVED, SENT, CLOSED = "received", "sent", "closed"


class LaneStream(LaneContext):
    """A stream-stream call on a lane thread, driven by its events.

    The lane thread starts each receive (`receive`, one at a time) and takes
    the call's events from its queue (`next_event`); any thread may `send` an
    answer: it starts at once when no other is being sent, else after those
    before it, and its SENT event carries the note it was given. `finish`
    sends the status once the handler returns."""

    def __init__(self, event: Any, queue: Any, method: str) -> None:
        super().__init__(event, queue)
        self.call_details = _CallDetails(method, event.invocation_metadata)
        self._receiving = False
        self._received_tag, self._sent_tag, self._closed_tag = object(), object(), object()
        self._send_lock = threading.Lock()
        self._unsent: collections.deque[tuple[bytes, object]] = collections.deque()
        self._in_send: object | None = None  # the note of the answer being sent
        self._sending = False
        self.closed = False  # the caller cancelled, or the deadline passed
        event.call.start_server_batch((cygrpc.ReceiveCloseOnServerOperation(0),), self._closed_tag)

    def is_active(self) -> bool:
        return not self.closed and super().is_active()

    def receive(self) -> None:
        """Ask for the next request (its RECEIVED event follows), unless one is asked for."""
        if not self._receiving and not self.closed:
            operation = cygrpc.ReceiveMessageOperation(0)
            self._receiving = self._start((operation,), self._received_tag)

    @property
    def receiving(self) -> bool:
        return self._receiving

    def send(self, body: bytes, note: object) -> None:
        """Send `body` (from any thread), after the answers before it."""
        with self._send_lock:
            if self.finished:
                return  # the call is over: nobody would read it
            if self._sending:
                self._unsent.append((body, note))
                return
            self._start_send(body, note)

    def _start_send(self, body: bytes, note: object) -> None:
        """Start sending `body` (holding the send lock, none being sent)."""
        operations: tuple[Any, ...] = (cygrpc.SendMessageOperation(body, 0),)
        if not self._initial_sent:
            self._initial_sent = True
            operations = (cygrpc.SendInitialMetadataOperation(None, 0), *operations)
        self._in_send = note
        self._sending = self._start(operations, self._sent_tag)

    def _start(self, operations: tuple[Any, ...], tag: object) -> bool:
        """Start a batch; False if the core refused it (no event will come
        for it): the call is then over for the lane."""
        if self._event.call.start_server_batch(operations, tag):  # a grpc_call_error
            self.closed = True
            return False
        return True

    def next_event(self, timeout: float) -> tuple[str, Any] | None:
        """The call's next event, or None after `timeout` seconds without one."""
        deadline = time.time() + timeout
        while True:
            event = self._queue.poll(deadline)
            tag = event.tag
            if tag is self._received_tag:
                self._receiving = False
                message = event.batch_operations[0].message() if event.success else None
                return RECEIVED, message
            if tag is self._sent_tag:
                return SENT, self._sent(ok=event.success)
            if tag is self._closed_tag:
                self.closed = True
                return CLOSED, None
            if event.completion_type == cygrpc.CompletionType.queue_timeout:
                return None
            if event.completion_type == cygrpc.CompletionType.queue_shutdown:
                raise RuntimeError("the lane's completion queue was shut down")

    def _sent(self, *, ok: bool) -> object:
        """The note of the answer just sent; the next waiting one starts."""
        with self._send_lock:
            note, self._in_send, self._sending = self._in_send, None, False
            if ok and self._unsent and not self.finished:
                self._start_send(*self._unsent.popleft())
            elif not ok:
                self.closed = True  # the call broke: what is left is never sent
        return note

    def finish(self, body: bytes | None = None) -> None:
        """Send the status set (OK if none). The call's close event comes later
        (once the caller closes its side too): it is not waited for, and the
        lane skips it."""
        with self._send_lock:
            self.finished = True
            self._unsent.clear()
            initial_sent = self._initial_sent
        code = self._code or grpc.StatusCode.OK
        details = (self._details or "").encode("utf-8")
        operations = []
        if not initial_sent:
            operations.append(cygrpc.SendInitialMetadataOperation(None, 0))
        operations.append(
            cygrpc.SendStatusFromServerOperation(self._trailing, code.value[0], details, 0)
        )
        if not self.closed:
            _run_batch(self._queue, self._event.call, tuple(operations))
        for callback in self._callbacks:
            callback()


class StreamLane(_Lane):
    """Serves one stream-stream method of a `grpc.server` on up to `threads`
    threads of its own, each stream on one thread from its arrival to its
    status: `serve(stream)` runs on it, drives the stream by its events
    (`LaneStream`), and returns when it is done; the status set on the stream
    is then sent (an `abort` sets it too). The server's interceptors are not
    run: what they would do for the method is `serve`'s."""

    def __init__(
        self,
        core: Any,
        core_lock: Any,
        method: str,
        serve: Callable[[LaneStream], None],
        threads: int,
        name: str,
    ) -> None:
        super().__init__(core, core_lock, method, threads, name)
        self._serve_stream = serve

    @classmethod
    def attach(
        cls,
        server: grpc.Server,
        method: str,
        serve: Callable[[LaneStream], None],
        threads: int,
        name: str = "stream-lane",
    ) -> StreamLane | None:
        """Take the stream-stream `method` from grpcio's dispatch to a lane;
        None, leaving it to grpcio, if this grpcio lacks what the lane needs or
        the method is not a registered stream-stream one."""
        claim = _claim(server, method, "stream_stream")
        if claim is None:
            return None
        lane = cls(claim.core, claim.core_lock, method, serve, threads, name)
        claim.take()
        return lane

    def _call(self, event: Any, queue: Any) -> None:
        stream = LaneStream(event, queue, self.method)
        try:
            self._serve_stream(stream)
        except _Aborted:
            pass
        except Exception as err:  # as grpcio answers a handler that raises
            log.exception("a lane stream's handler raised", method=self.method)
            if stream.code() in (None, grpc.StatusCode.OK):
                _failed(stream, grpc.StatusCode.UNKNOWN, f"Exception iterating responses: {err}")
        stream.finish()
