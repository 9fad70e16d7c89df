"""Traces: OpenTelemetry spans when configured, nothing at all otherwise.

Tracing is on when the standard `OTEL_*` variables ask for it
(`OTEL_TRACES_EXPORTER=otlp` or `console`, or an OTLP endpoint in
`OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) and
`OTEL_SDK_DISABLED` is not `true`; it needs the `[tracing]` extra. Off, every
`span()` is one shared do-nothing context manager: no SDK is imported.

On, the spans are this module's own (`Span`), not the SDK's: an SDK span
costs ~35 µs to start and end, checking and copying every attribute under a
lock, which is most of what tracing used to add to an archive. The SDK still
does everything around them: the sampler (`OTEL_TRACES_SAMPLER`), the ids, the
resource (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`), the propagators
(`OTEL_PROPAGATORS`), the batch processor (`OTEL_BSP_*`) and the exporters.
A span that ends goes to the batch processor of the sidecar's own OTLP/HTTP
exporter (`otlp.py`) as it is, and to any other processor as the SDK's
`ReadableSpan`. What the SDK's spans do that these do not: apply the span
limits (`OTEL_SPAN_ATTRIBUTE_*`, `OTEL_ATTRIBUTE_*`; the sidecar's spans carry
at most 16 attributes, each an id, count, size, code or name it bounds
itself), record events or links (they have none), and become the current span
of OpenTelemetry's own context (nothing in the sidecar reads it). A call with
none of the propagators' headers (their `fields`) starts a new trace without
asking them.

Spans carry ids, counts, codes and names (channel, method, bucket, attempt,
store error code), never message content, addresses, phone numbers, tokens
or user ids; exceptions are not recorded (their text is not ours to vet), a
failed span's status names the error code instead.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from msgarchive_server.telemetry.spans import CURRENT
from msgarchive_server.telemetry.spans import Attributes as Attributes  # re-exported
from msgarchive_server.telemetry.spans import Span as Span  # re-exported

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import SpanContext, SpanKind

_NOTHING: contextlib.nullcontext[None] = contextlib.nullcontext()


class TracingConfigError(Exception):
    """The OTEL_* settings ask for something this process cannot do."""


class _Tracer:
    """What starting and ending a span needs, read once from the provider."""

    def __init__(self, provider: TracerProvider, processors: Iterable[SpanProcessor]) -> None:
        from opentelemetry import propagate, trace
        from opentelemetry.context import Context
        from opentelemetry.sdk.trace import ReadableSpan
        from opentelemetry.sdk.trace.sampling import DEFAULT_ON, Decision
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope
        from opentelemetry.trace import (
            NonRecordingSpan,
            SpanContext,
            SpanKind,
            Status,
            StatusCode,
            TraceFlags,
        )

        self.provider = provider
        self.processors = tuple(processors)
        # A batch processor whose exporter takes these spans as they are
        # (otlp.HTTPSpanExporter) is handed them so; the rest a ReadableSpan.
        self.direct = tuple(p for p in self.processors if _takes_spans(p))
        self.others = tuple(p for p in self.processors if p not in self.direct)
        self.sampler = provider.sampler
        # The default, parentbased_always_on, decided here without its call
        # (and the context it reads the parent from): a span follows its
        # parent, and a new trace is sampled.
        self.follows_parent = self.sampler is DEFAULT_ON
        self.ids = provider.id_generator
        self.resource = provider.resource
        self.scope: InstrumentationScope = InstrumentationScope("msgarchive")
        self.random_ids = self.ids.is_trace_id_random()
        self.extract = propagate.extract
        # The headers the propagators read (OTEL_PROPAGATORS; by default
        # traceparent, tracestate, baggage): a call with none of them starts a
        # new trace without their extract. None: every call is extracted.
        try:
            self.fields: frozenset[str] | None = frozenset(propagate.get_global_textmap().fields)
        except Exception:
            self.fields = None
        self.no_context = Context()
        self.get_span = trace.get_current_span
        self.in_context = trace.set_span_in_context
        self.non_recording = NonRecordingSpan
        self.readable = ReadableSpan
        self.span_context = SpanContext
        # A span's flags by (sampled, random trace id), made once.
        self.flags = {
            (sampled, random_id): TraceFlags(
                (TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
                | (TraceFlags.RANDOM_TRACE_ID if random_id else 0)
            )
            for sampled in (False, True)
            for random_id in (False, True)
        }
        self.internal, self.server = SpanKind.INTERNAL, SpanKind.SERVER
        self.unset = Status(StatusCode.UNSET)
        self.status = Status
        self.error = StatusCode.ERROR
        self.sampled = Decision.RECORD_AND_SAMPLE
        self.recorded = (Decision.RECORD_ONLY, Decision.RECORD_AND_SAMPLE)

    def start(
        self,
        name: str,
        kind: SpanKind,
        attributes: Attributes | None,
        parent: SpanContext | None,
        parent_context: Context | None,
    ) -> Span:
        """A span whose parent is `parent` (None: a new trace); `parent_context`
        is the OpenTelemetry context holding it, for a sampler (made from
        `parent` when None and a sampler needs one)."""
        if parent is not None and not parent.is_valid:
            parent = None
        if parent is None:
            trace_id = self.ids.generate_trace_id()
            random_id = self.random_ids
        else:
            trace_id = parent.trace_id
            random_id = parent.trace_flags.random_trace_id
        if self.follows_parent:
            sampled = recording = parent is None or parent.trace_flags.sampled
            state = parent.trace_state if parent is not None else None
            kept = dict(attributes) if sampled and attributes else {}
        else:
            if parent_context is None and parent is not None:
                parent_context = self.in_context(self.non_recording(parent))
            result = self.sampler.should_sample(parent_context, trace_id, name, kind, attributes)
            sampled = result.decision is self.sampled
            recording = result.decision in self.recorded
            state, kept = result.trace_state, dict(result.attributes)
        context = self.span_context(
            trace_id,
            self.ids.generate_span_id(),
            is_remote=False,
            trace_flags=self.flags[sampled, random_id],
            trace_state=state,
        )
        return Span(self, name, kind, context, parent, kept, recording, sampled)

    def child(self, name: str, attributes: Attributes | None, parent: Span) -> Span:
        """An internal span whose parent is `parent`, one of these spans (valid,
        its decision made): with the default sampler, the parent's decision and
        flags are the child's, so nothing is decided again."""
        if not self.follows_parent:
            return self.start(name, self.internal, attributes, parent.context, None)
        of = parent.context
        sampled = parent.sampled
        context = self.span_context(
            of.trace_id,
            self.ids.generate_span_id(),
            is_remote=False,
            trace_flags=of.trace_flags,
            trace_state=of.trace_state,
        )
        kept = dict(attributes) if sampled and attributes else {}
        return Span(self, name, self.internal, context, of, kept, sampled, sampled)


def _takes_spans(processor: SpanProcessor) -> bool:
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    return isinstance(processor, BatchSpanProcessor) and (
        getattr(processor.span_exporter, "takes_spans", False) is True
    )


_tracer: _Tracer | None = None


def enabled() -> bool:
    return _tracer is not None


def span(
    name: str, attributes: Attributes | None = None, *, parent: Span | None = None
) -> contextlib.AbstractContextManager[Span | None]:
    """A child span of the current one (or of `parent`, a span of another
    thread: `current()`); None inside when off."""
    tracer = _tracer
    if tracer is None:
        return _NOTHING
    if parent is None:
        parent = CURRENT.get()
        if parent is None:
            return tracer.start(name, tracer.internal, attributes, None, None)
    return tracer.child(name, attributes, parent)


def server_span(
    name: str,
    headers: Mapping[str, str] | Iterable[tuple[str, Any]],
    attributes: Attributes | None = None,
) -> contextlib.AbstractContextManager[Span | None]:
    """The span of one call, continuing the trace its `traceparent` header names
    (`headers`: lower-case names, e.g. gRPC's invocation metadata)."""
    tracer = _tracer
    if tracer is None:
        return _NOTHING
    fields = tracer.fields
    if not isinstance(headers, Mapping):
        headers = {
            key: value
            for key, value in headers
            if isinstance(value, str) and (fields is None or key in fields)
        }
    if fields is not None and not any(field in headers for field in fields):
        return tracer.start(name, tracer.server, attributes, None, tracer.no_context)
    context = tracer.extract(headers)
    parent = tracer.get_span(context).get_span_context()
    return tracer.start(name, tracer.server, attributes, parent, context)


def current() -> Span | None:
    """The current span, to hand to another thread as a `parent`; None when off
    or outside any span."""
    return CURRENT.get() if _tracer is not None else None


def note(attributes: Attributes) -> None:
    """Add attributes to the current span."""
    if _tracer is not None:
        target = CURRENT.get()
        if target is not None and target.recording:
            target.attributes.update(attributes)


def annotate(target: Span | None, attributes: Attributes) -> None:
    """Add attributes to a span (from `span()` or `server_span()`; None when off)."""
    if target is not None:
        target.set_attributes(attributes)


def failed(target: Span | None, code: str) -> None:
    """Mark a span failed with an error code (never an exception's text)."""
    if target is not None:
        target.fail(code)


def configure(environ: Mapping[str, str] = os.environ) -> bool:
    """Turn tracing on if `environ` asks for it; True if it is on."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    names = [n.strip() for n in environ.get("OTEL_TRACES_EXPORTER", "").split(",") if n.strip()]
    endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if not names:
        if not endpoint:
            return False
        names = ["otlp"]
    if names == ["none"]:
        return False
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        raise TracingConfigError(
            "OTEL_* asks for traces, and the OpenTelemetry SDK is not installed: "
            "pip install 'msgarchive[tracing]'"
        ) from None
    # The provider reads OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES and
    # OTEL_TRACES_SAMPLER*; the processor OTEL_BSP_*; the exporter its endpoint,
    # headers, timeout and certificate variables.
    resource = Resource.create({"service.name": environ.get("OTEL_SERVICE_NAME", "msgarchive")})
    provider = TracerProvider(resource=resource)
    install(provider, [BatchSpanProcessor(_exporter(name, environ)) for name in names])
    return True


def _exporter(name: str, environ: Mapping[str, str]) -> Any:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if name != "otlp":
        raise TracingConfigError(f"OTEL_TRACES_EXPORTER={name}: expected otlp, console or none")
    protocol = environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
    )
    if protocol == "http/protobuf":
        from msgarchive_server.telemetry.otlp import HTTPSpanExporter

        return HTTPSpanExporter()
    if protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # type: ignore[import-not-found, unused-ignore]
                OTLPSpanExporter as GrpcExporter,
            )
        except ImportError:
            raise TracingConfigError(
                "OTEL_EXPORTER_OTLP_PROTOCOL=grpc needs "
                "pip install opentelemetry-exporter-otlp-proto-grpc"
            ) from None
        return GrpcExporter()
    raise TracingConfigError(
        f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol}: expected http/protobuf or grpc"
    )


def install(provider: TracerProvider | None, processors: Iterable[SpanProcessor] = ()) -> None:
    """Trace with `provider`'s sampler, ids and resource, each ended span going
    to `processors` (None: off). Tests install an in-memory exporter's.

    The processors are the provider's too, so that its shutdown (by
    `shutdown()`, or the SDK's own at the process's exit) exports what they
    hold; the spans reach them directly."""
    global _tracer
    if provider is None:
        _tracer = None
        return
    processors = tuple(processors)
    for processor in processors:
        provider.add_span_processor(processor)
    _tracer = _Tracer(provider, processors)


def flush() -> bool:
    """Export what is buffered now; False if an exporter did not finish in time."""
    tracer = _tracer
    return tracer is None or all(p.force_flush() for p in tracer.processors)


def shutdown() -> None:
    """Export what is buffered, then stop tracing."""
    tracer = _tracer
    install(None)
    if tracer is not None:
        tracer.provider.shutdown()  # and so its processors
