"""The sidecar's own spans (`tracing.py` makes them, `otlp.py` encodes them).

Nothing here imports the OpenTelemetry SDK: what a span needs of it comes
from its `Recorder` (tracing.py's tracer, made only when tracing is on).
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode

Attributes = Mapping[str, str | int | float | bool]


class Recorder(Protocol):
    """What a span reads of the tracer that made it."""

    @property
    def resource(self) -> Resource: ...
    @property
    def scope(self) -> InstrumentationScope: ...
    @property
    def direct(self) -> Sequence[SpanProcessor]:
        """The processors that take the span as it is."""

    @property
    def others(self) -> Sequence[SpanProcessor]:
        """The processors that take a ReadableSpan."""

    @property
    def unset(self) -> Status: ...
    @property
    def error(self) -> StatusCode: ...
    @property
    def status(self) -> Callable[[StatusCode, str], Status]: ...
    @property
    def readable(self) -> Callable[..., ReadableSpan]: ...


class Span:
    """One span, current in this thread between `with` and its end.

    Made by `tracing.span()` and `tracing.server_span()`; ended when the `with` block is left,
    whether or not it raised, and handed to the processors (as itself to those
    that take it, as a `ReadableSpan` to the rest). Attributes and status set
    after its end are ignored, as the SDK ignores them.
    """

    __slots__ = (
        "_token",
        "attributes",
        "context",
        "end",
        "kind",
        "name",
        "parent",
        "recording",
        "sampled",
        "start",
        "status",
        "tracer",
    )

    def __init__(
        self,
        tracer: Recorder,
        name: str,
        kind: SpanKind,
        context: SpanContext,
        parent: SpanContext | None,
        attributes: dict[str, Any],
        recording: bool,
        sampled: bool,
    ) -> None:
        self.tracer = tracer
        self._token: contextvars.Token[Span | None] | None = None
        self.name = name
        self.kind = kind
        self.context = context
        self.parent = parent
        self.attributes = attributes
        self.recording = recording
        self.sampled = sampled  # its context's flag, kept when it ends
        self.status: Status = tracer.unset
        self.start = time.time_ns()
        self.end = 0

    def get_span_context(self) -> SpanContext:
        return self.context

    def set_attributes(self, attributes: Attributes) -> None:
        if self.recording:
            self.attributes.update(attributes)

    def fail(self, code: str) -> None:
        if self.recording:
            self.status = self.tracer.status(self.tracer.error, code)

    def __enter__(self) -> Span:
        self._token = CURRENT.set(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._token is not None:
            try:  # noqa: SIM105 (contextlib.suppress: an object made for every span)
                CURRENT.reset(self._token)
            except ValueError:
                # A generator's span can be left from another thread (a stream
                # closed by gRPC): there is then nothing of this thread's to restore.
                pass
            self._token = None
        if not self.recording:
            return
        self.end = time.time_ns()
        self.recording = False  # ended: nothing more is set on it
        tracer = self.tracer
        for processor in tracer.direct:
            processor.on_end(self)  # type: ignore[arg-type]
        if tracer.others:
            ended = self.readable()
            for processor in tracer.others:
                processor.on_end(ended)

    def readable(self) -> ReadableSpan:
        """The SDK's `ReadableSpan` of this ended span."""
        tracer = self.tracer
        return tracer.readable(
            self.name,
            context=self.context,
            parent=self.parent,
            resource=tracer.resource,
            attributes=self.attributes,
            kind=self.kind,
            status=self.status,
            start_time=self.start,
            end_time=self.end,
            instrumentation_scope=tracer.scope,
        )


# The span current in this thread (or task), if any.
CURRENT: contextvars.ContextVar[Span | None] = contextvars.ContextVar(
    "msgarchive_span", default=None
)
