"""Server interceptors: a request id, a trace span and one summary log line per call;
and a bound on the streams open at once."""

from __future__ import annotations

import contextlib
import functools
import itertools
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any

import grpc
import structlog

from msgarchive.validation import FieldViolation
from msgarchive_server.domain.errors import DomainError, InvalidLookup, InvalidMessage, Overloaded
from msgarchive_server.edge.access import is_local_peer, peer_host
from msgarchive_server.edge.backpressure import StreamSlots
from msgarchive_server.edge.status import to_status
from msgarchive_server.telemetry import tracing
from msgarchive_server.telemetry.metrics import Metrics

if TYPE_CHECKING:
    from msgarchive_server.telemetry.spans import Span

    # For the checker only: grpcio's handler type cannot be subscripted at run time.
    Handler = grpc.RpcMethodHandler[Any, Any]
    Continuation = Callable[[grpc.HandlerCallDetails], Handler | None]

log = structlog.get_logger("msgarchive.rpc")

REQUEST_ID_HEADER = "x-request-id"
# Probes and tooling: logged at debug, so health checks do not flood the log.
_QUIET_PREFIXES = ("/grpc.health.", "/grpc.reflection.")


# Generated request ids: unique to this process start, then a counter (cheaper
# than uuid4, whose urandom call showed in profiles).
_ID_PREFIX = secrets.token_hex(6)
_ids = itertools.count(1)


def new_request_id() -> str:
    return f"{_ID_PREFIX}-{next(_ids):x}"


def _request_id(details: grpc.HandlerCallDetails) -> str:
    for key, value in details.invocation_metadata or ():
        if key == REQUEST_ID_HEADER and isinstance(value, str) and value:
            return value[:128]
    return ""


_NO_SPAN: contextlib.nullcontext[None] = contextlib.nullcontext()  # stateless: one for all


def _rpc_span(
    method: str, details: grpc.HandlerCallDetails, request_id: str, quiet: bool
) -> contextlib.AbstractContextManager[Span | None]:
    """The call's span (none for health checks and reflection), continuing the
    caller's trace from its `traceparent` metadata."""
    if quiet or not tracing.enabled():
        return _NO_SPAN
    name, service, rpc = _span_names(method)
    return tracing.server_span(
        name,
        details.invocation_metadata or (),
        {
            "rpc.system": "grpc",
            "rpc.service": service,
            "rpc.method": rpc,
            "msgarchive.request_id": request_id,
        },
    )


@functools.lru_cache(maxsize=64)  # the server's methods: a handler was found for each
def _span_names(method: str) -> tuple[str, str, str]:
    """A method's span name, service and method name."""
    service, _, name = method.lstrip("/").partition("/")
    return method.lstrip("/"), service, name


def _end_rpc_span(span: Span | None, code: grpc.StatusCode) -> None:
    tracing.annotate(span, {"rpc.grpc.status_code": code.value[0]})
    if code is not grpc.StatusCode.OK:
        tracing.failed(span, code.name)


_ARCHIVE_METHODS = (
    "/msgarchive.v1.ArchiveService/Archive",
    "/msgarchive.v1.ArchiveService/ArchiveStream",
)


class _Undecodable:
    """A request whose bytes do not parse (bad protobuf, a string that is not
    UTF-8): handed to the handler wrapper in place of a message, to refuse."""

    __slots__ = ("kind",)

    def __init__(self, kind: str) -> None:
        self.kind = kind


def _tolerant(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """A deserializer that returns `_Undecodable` instead of raising: gRPC would
    answer a raising one INTERNAL, with no log line and no count."""
    if deserialize is None:
        return None

    def parse(raw: bytes) -> Any:
        try:
            return deserialize(raw)
        except Exception as err:
            return _Undecodable(type(err).__name__)

    return parse


def _undecodable(method: str) -> DomainError:
    """The caller's error for a request that does not parse: INVALID_ARGUMENT."""
    problem = FieldViolation(
        "request", "does not parse as the RPC's protobuf message (a string field that is "
        "not UTF-8, or bytes that are no such message)"
    )  # fmt: skip
    return InvalidMessage([problem]) if method in _ARCHIVE_METHODS else InvalidLookup([problem])


def count_undecodable(
    metrics: Metrics | None, method: str, err: DomainError, seconds: float
) -> None:
    if metrics is None:
        return
    if method in _ARCHIVE_METHODS:
        metrics.archive_failed(err.reason_name, "-")
        metrics.archive_answered("none", err.outcome, seconds)
    elif method.startswith("/msgarchive."):
        metrics.reads.labels(method.rsplit("/", 1)[-1], "INVALID_ARGUMENT").inc()


class StreamRecord:
    """What is kept of one stream, by grpcio's dispatch (`RequestLogInterceptor`)
    and by a lane alike: its request id and method in the log context, its
    trace span, the answers it sent, and one summary log line when it ends."""

    def __init__(
        self,
        details: grpc.HandlerCallDetails,
        context: grpc.ServicerContext,
        metrics: Metrics | None,
    ) -> None:
        self.method: str = details.method
        self.details = details
        self.context = context
        self.metrics = metrics
        self.quiet = self.method.startswith(_QUIET_PREFIXES)
        self.answers = 0
        self.request_id = _request_id(details) or new_request_id()

    def __enter__(self) -> StreamRecord:
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=self.request_id, method=self.method)
        self.start = time.perf_counter()
        self._span = _rpc_span(self.method, self.details, self.request_id, quiet=self.quiet)
        self.span = self._span.__enter__()
        return self

    def undecodable(self) -> grpc.Status:
        """The status that ends a stream one of whose requests did not parse
        (counted and logged as the caller's error)."""
        refused = _undecodable(self.method)
        structlog.contextvars.bind_contextvars(reason=refused.reason_name)
        count_undecodable(self.metrics, self.method, refused, time.perf_counter() - self.start)
        return to_status(refused)

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is None:
            code = self.context.code() or grpc.StatusCode.OK  # type: ignore[attr-defined]
        elif kind is GeneratorExit:
            code = grpc.StatusCode.CANCELLED
        else:
            code = self.context.code() or grpc.StatusCode.UNKNOWN  # type: ignore[attr-defined]
        tracing.annotate(self.span, {"msgarchive.answers": self.answers})
        _end_rpc_span(self.span, code)
        self._span.__exit__(kind, err, tb)
        emit = log.debug if self.quiet else log.info
        emit(
            "rpc",
            code=code.name,
            answers=self.answers,
            duration_ms=round((time.perf_counter() - self.start) * 1000, 3),
        )
        structlog.contextvars.clear_contextvars()


class RequestLogInterceptor(grpc.ServerInterceptor):
    """Binds request id and method to the log context; logs each unary call once.
    A request that does not parse is refused INVALID_ARGUMENT, logged and counted."""

    def __init__(self, metrics: Metrics | None = None) -> None:
        self.metrics = metrics

    def intercept_service(
        self,
        continuation: Continuation,
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = continuation(handler_call_details)
        if handler is not None and handler.stream_stream is not None:
            return self._logged_stream(handler, handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method: str = handler_call_details.method
        header_id = _request_id(handler_call_details)
        inner = handler.unary_unary
        quiet = method.startswith(_QUIET_PREFIXES)

        def logged(request: Any, context: grpc.ServicerContext) -> Any:
            structlog.contextvars.clear_contextvars()
            request_id = header_id or getattr(request, "request_id", "") or new_request_id()
            structlog.contextvars.bind_contextvars(request_id=request_id, method=method)
            start = time.perf_counter()
            code = grpc.StatusCode.OK
            with _rpc_span(method, handler_call_details, request_id, quiet) as span:
                try:
                    if isinstance(request, _Undecodable):
                        refused = _undecodable(method)
                        structlog.contextvars.bind_contextvars(reason=refused.reason_name)
                        count_undecodable(
                            self.metrics, method, refused, time.perf_counter() - start
                        )
                        context.abort_with_status(to_status(refused))
                    return inner(request, context)
                except Exception:
                    code = context.code() or grpc.StatusCode.UNKNOWN  # type: ignore[attr-defined]
                    if code is grpc.StatusCode.UNKNOWN:
                        log.exception("unexpected error")
                    raise
                finally:
                    _end_rpc_span(span, code)
                    emit = log.debug if quiet else log.info
                    emit(
                        "rpc",
                        code=code.name,
                        duration_ms=round((time.perf_counter() - start) * 1000, 3),
                    )
                    structlog.contextvars.clear_contextvars()

        return grpc.unary_unary_rpc_method_handler(
            logged,
            request_deserializer=_tolerant(handler.request_deserializer),
            response_serializer=handler.response_serializer,
        )

    def _logged_stream(
        self, handler: grpc.RpcMethodHandler[Any, Any], details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any]:
        """One summary line per stream, with how many answers it sent."""
        inner = handler.stream_stream
        assert inner is not None
        metrics = self.metrics

        def logged(requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
            undecodable: list[_Undecodable] = []

            def decoded() -> Iterator[Any]:
                """The requests up to the first that does not parse; the stream
                then ends as the caller's error, once the rest are answered."""
                for request in requests:
                    if isinstance(request, _Undecodable):
                        undecodable.append(request)
                        return
                    yield request

            with StreamRecord(details, context, metrics) as record:
                for answer in inner(decoded(), context):
                    record.answers += 1
                    yield answer
                if undecodable:
                    context.abort_with_status(record.undecodable())

        return grpc.stream_stream_rpc_method_handler(
            logged,
            request_deserializer=_tolerant(handler.request_deserializer),
            response_serializer=handler.response_serializer,
        )


class StreamSlotsInterceptor(grpc.ServerInterceptor):
    """Every call that streams requests (ArchiveStream, reflection) takes a place
    in `slots` for as long as it is open, or is refused at its start with
    RESOURCE_EXHAUSTED / OVERLOADED: each holds a server thread while open, and
    unary calls and health checks must always find one. (Health's Watch streams
    answers only, without holding a thread, and is not bounded here.)"""

    def __init__(self, slots: StreamSlots, metrics: Metrics) -> None:
        self.slots = slots
        self.metrics = metrics

    def intercept_service(
        self,
        continuation: Continuation,
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = continuation(handler_call_details)
        if handler is None or handler.stream_stream is None:
            return handler
        inner = handler.stream_stream
        slots, metrics = self.slots, self.metrics

        def bounded(requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
            with stream_slot(slots, metrics, context):
                yield from inner(requests, context)

        return grpc.stream_stream_rpc_method_handler(
            bounded,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


@contextlib.contextmanager
def stream_slot(
    slots: StreamSlots, metrics: Metrics, context: grpc.ServicerContext
) -> Iterator[None]:
    """A place in `slots` for the stream of `context`, held while the block
    runs (and given back when the call ends, however it ends); the stream is
    refused at once (RESOURCE_EXHAUSTED / OVERLOADED) if none is free."""
    peer, local = peer_host(context.peer()), is_local_peer(context.peer())
    full = slots.try_open(peer, local)
    if full:
        metrics.stream_refused(full)
        limit = slots.limit if full == "total" else slots.per_peer
        context.abort_with_status(to_status(Overloaded.streams(limit, full == "peer")))
    once = threading.Lock()

    def give_back() -> None:
        if once.acquire(blocking=False):
            slots.close(peer, local)
            metrics.streams_open.set(slots.open)

    metrics.streams_open.set(slots.open)
    context.add_callback(give_back)
    try:
        yield
    finally:
        give_back()
