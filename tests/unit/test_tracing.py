"""When tracing is on, and what turning it on asks of the OTEL_* settings."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from msgarchive_server.telemetry import tracing


@pytest.fixture(autouse=True)
def off_afterwards() -> Iterator[None]:
    yield
    tracing.shutdown()


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"OTEL_SERVICE_NAME": "msgarchive"},  # naming a service asks for no export
        {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"},
        {"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"},
    ],
)
def test_off_unless_asked_and_then_spans_are_one_shared_nothing(environ: dict[str, str]) -> None:
    assert tracing.configure(environ) is False
    assert tracing.enabled() is False
    assert tracing.current() is None
    with tracing.span("a") as inside:
        assert inside is None
    assert tracing.span("a") is tracing.span("b", {"k": 1})
    assert tracing.server_span("c", {"traceparent": "x"}) is tracing.span("a")


@pytest.mark.parametrize(
    "environ",
    [
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"},
        {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:1/v1/traces"},
        {"OTEL_TRACES_EXPORTER": "console"},
        {"OTEL_TRACES_EXPORTER": "otlp,console"},
        # Only "true" turns the SDK off, as the specification says of booleans.
        {"OTEL_SDK_DISABLED": "yes", "OTEL_TRACES_EXPORTER": "console"},
    ],
)
def test_on_when_an_exporter_or_an_endpoint_is_named(environ: dict[str, str]) -> None:
    assert tracing.configure(environ) is True
    assert tracing.enabled() is True
    assert tracing.current() is None  # no span yet
    tracing.shutdown()  # nothing to export: no span was made
    assert tracing.enabled() is False


def test_spans_nest_when_on() -> None:
    assert tracing.configure({"OTEL_TRACES_EXPORTER": "console"}) is True
    with tracing.span("outer") as outer, tracing.span("inner", {"msgarchive.attempt": 1}) as inner:
        assert outer is not None
        assert inner is not None
        assert inner.get_span_context().trace_id == outer.get_span_context().trace_id
        assert inner.get_span_context().span_id != outer.get_span_context().span_id
        assert tracing.current() is inner
    assert tracing.current() is None


@pytest.mark.parametrize(
    ("environ", "says"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER=zipkin: expected otlp"),
        ({"OTEL_TRACES_EXPORTER": "jaeger"}, "OTEL_TRACES_EXPORTER=jaeger: expected otlp"),
        ({"OTEL_TRACES_EXPORTER": "bogus"}, "OTEL_TRACES_EXPORTER=bogus: expected otlp"),
        *[
            (
                {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": protocol},
                f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol}: expected http/protobuf or grpc",
            )
            for protocol in ("http/json", "json", "alpha")
        ],
    ],
)
def test_what_cannot_be_done_is_refused_in_one_line(environ: dict[str, str], says: str) -> None:
    with pytest.raises(tracing.TracingConfigError, match=says):
        tracing.configure(environ)
    assert tracing.enabled() is False
