"""Traces: OpenTelemetry spans when configured, nothing at all otherwise.

Tracing is on when the standard `OTEL_*` variables ask for it
(`OTEL_TRACES_EXPORTER=otlp` or `console`, or an OTLP endpoint in
`OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) and
`OTEL_SDK_DISABLED` is not `true`; it needs the `[tracing]` extra. Off, every
`span()` is one shared do-nothing context manager: no SDK is imported.

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

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

Attributes = Mapping[str, str | int | float | bool]

_NOTHING: contextlib.nullcontext[None] = contextlib.nullcontext()
_tracer: Tracer | None = None
_provider: TracerProvider | None = None


class TracingConfigError(Exception):
    """The OTEL_* settings ask for something this process cannot do."""


def enabled() -> bool:
    return _tracer is not None


def span(
    name: str, attributes: Attributes | None = None, *, parent: Context | None = None
) -> contextlib.AbstractContextManager[Span | None]:
    """A child span of the current one (or of `parent`); None inside when off."""
    if _tracer is None:
        return _NOTHING
    return _tracer.start_as_current_span(
        name,
        context=parent,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    )


def server_span(
    name: str,
    headers: Mapping[str, str] | Iterable[tuple[str, Any]],
    attributes: Attributes | None = None,
) -> contextlib.AbstractContextManager[Span | None]:
    """The span of one call, continuing the trace its `traceparent` header names
    (`headers`: lower-case names, e.g. gRPC's invocation metadata)."""
    if _tracer is None:
        return _NOTHING
    from opentelemetry import propagate
    from opentelemetry.trace import SpanKind

    if not isinstance(headers, Mapping):
        headers = {key: value for key, value in headers if isinstance(value, str)}
    return _tracer.start_as_current_span(
        name,
        context=propagate.extract(headers),
        kind=SpanKind.SERVER,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    )


def current() -> Context | None:
    """The current trace context, to hand to another thread; None when off."""
    if _tracer is None:
        return None
    from opentelemetry import context

    return context.get_current()


def note(attributes: Attributes) -> None:
    """Add attributes to the current span."""
    if _tracer is not None:
        from opentelemetry import trace

        trace.get_current_span().set_attributes(attributes)


def annotate(target: Span | None, attributes: Attributes) -> None:
    """Add attributes to a span (from `span()` or `server_span()`; None when off)."""
    if target is not None:
        target.set_attributes(attributes)


def failed(target: Span | None, code: str) -> None:
    """Mark a span failed with an error code (never an exception's text)."""
    if target is not None:
        from opentelemetry.trace import Status, StatusCode

        target.set_status(Status(StatusCode.ERROR, code))


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
    for name in names:
        provider.add_span_processor(BatchSpanProcessor(_exporter(name, environ)))
    install(provider)
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
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
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


def install(provider: TracerProvider | None) -> None:
    """Trace with `provider` (None: off). Tests install one with an in-memory exporter."""
    global _tracer, _provider
    _provider = provider
    _tracer = provider.get_tracer("msgarchive") if provider is not None else None


def shutdown() -> None:
    """Export what is buffered, then stop tracing."""
    if _provider is not None:
        _provider.shutdown()
    install(None)
