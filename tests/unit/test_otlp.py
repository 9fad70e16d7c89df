"""The hand-written OTLP encoder writes what the SDK's would, and the sidecar's
spans keep what the SDK would make of the same calls (sampling, parents)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry import propagate
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http import trace_exporter
from opentelemetry.propagators.textmap import TextMapPropagator, default_getter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider, sampling
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, TraceIdRatioBased
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
    set_span_in_context,
)

from msgarchive_server.telemetry import otlp, tracing

TRACE = 0x0AF7651916CD43DD8448EB211C80319C
PARENT = 0xB7AD6B7169203331
TRACEPARENT = f"00-{TRACE:032x}-{PARENT:016x}-01"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.install(
        TracerProvider(resource=Resource.create({"service.name": "under-test"})),
        [SimpleSpanProcessor(exporter)],
    )
    try:
        yield exporter
    finally:
        tracing.shutdown()


def same_as_the_sdks(spans: Any) -> None:
    """The same bytes as the SDK's (protobuf writes fields in number order)."""
    encoded = otlp.encode(spans)
    assert encoded is not None
    assert ExportTraceServiceRequest.FromString(encoded) == encode_spans(spans)
    assert encoded == encode_spans(spans).SerializeToString()


def readable(name: str = "s", **fields: Any) -> ReadableSpan:
    fields.setdefault("context", SpanContext(TRACE, 0x1234, is_remote=False))
    fields.setdefault("resource", Resource.create({"service.name": "x"}))
    fields.setdefault("start_time", 1_700_000_000_000_000_000)
    fields.setdefault("end_time", 1_700_000_000_000_500_000)
    return ReadableSpan(name, **fields)


def test_the_sidecars_spans_encode_as_the_sdk_would(spans: InMemorySpanExporter) -> None:
    with tracing.server_span("A/B", {"traceparent": TRACEPARENT}, {"rpc.system": "grpc"}) as call:
        tracing.note({"msgarchive.json_bytes": 412, "msgarchive.channel": "sms"})
        with tracing.span("store.put", {"msgarchive.attempt": 2}) as put:
            tracing.note({"msgarchive.already_archived": False})
            tracing.failed(put, "SlowDown")
        with tracing.span("retry.wait", {"msgarchive.retry.wait_ms": 12.5}):
            pass
        tracing.annotate(call, {"rpc.grpc.status_code": 0})
    finished = spans.get_finished_spans()
    assert [s.name for s in finished] == ["store.put", "retry.wait", "A/B"]
    same_as_the_sdks(finished)
    written, _, served = finished
    # The caller's span is remote, the sidecar's own are not; ids made here
    # are random (W3C trace context level 2), the caller's say nothing of theirs.
    assert served.parent is not None
    assert written.parent is not None
    assert (served.parent.is_remote, written.parent.is_remote, served.context.is_remote) == (
        True,
        False,
        False,
    )
    assert not served.context.trace_flags.random_trace_id  # the trace is the caller's
    with tracing.span("a new trace") as root:
        assert root is not None
        assert root.context.trace_flags.random_trace_id
        assert root.context.trace_flags.sampled


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"parent": SpanContext(TRACE, PARENT, is_remote=True)},
        {"parent": SpanContext(TRACE, PARENT, is_remote=False)},
        {"kind": SpanKind.CLIENT},
        {"status": Status(StatusCode.ERROR, "NoSuchBucket")},
        {"status": Status(StatusCode.OK)},
        {"context": SpanContext(TRACE, 7, False, TraceFlags(1), TraceState([("k", "v")]))},
        {"context": SpanContext(TRACE, 7, False, TraceFlags(1), TraceState())},  # empty
        {
            "attributes": {
                "text": "ünïcode ✓",
                "empty": "",
                "yes": True,
                "no": False,
                "zero": 0,
                "last two-byte int": 16_383,
                "first three-byte int": 16_384,
                "negative": -3,
                "big": (1 << 63) - 1,
                "small": -(1 << 63),
                "ratio": 0.25,
                "long": "x" * 20_000,
                "at the first three-byte length": "y" * 16_384,
                "one byte": "z" * 127,
                "two bytes": "z" * 128,
            }
        },
        {"attributes": BoundedAttributes(maxlen=1, attributes={"kept": 1, "dropped": 2})},
        {"instrumentation_scope": InstrumentationScope("lib", "1.2", "https://s", {"a": 1})},
        {"resource": Resource.create({"service.name": "x", "n": 3}, "https://schema")},
        {"start_time": 0, "end_time": 0},
    ],
)
def test_each_field_encodes_as_the_sdk_would(fields: dict[str, Any]) -> None:
    same_as_the_sdks([readable(**fields), readable("second")])


def test_spans_of_two_resources_and_scopes_are_grouped_as_the_sdk_groups_them() -> None:
    one, two = Resource.create({"service.name": "a"}), Resource.create({"service.name": "b"})
    scope = InstrumentationScope("other")
    batch = [
        readable("1", resource=one),
        readable("2", resource=two),
        readable("3", resource=one, instrumentation_scope=scope),
        readable("4", resource=one),
    ]
    same_as_the_sdks(batch)


@pytest.mark.parametrize(
    "span",
    [
        readable(events=[Event("e")]),
        readable(attributes={"list": ("a", "b")}),
        readable(attributes={"huge": 1 << 63}),
        readable(attributes={"hugely negative": -(1 << 63) - 1}),
        readable(attributes={"bytes": b"\x00"}),
        readable("\ud800"),  # a lone surrogate: not UTF-8
    ],
)
def test_what_it_does_not_write_is_left_to_the_sdk(span: ReadableSpan) -> None:
    assert otlp.encode([readable(), span]) is None


def test_keys_are_kept_encoded_up_to_a_bound(fresh_values: None) -> None:
    many = readable(attributes={f"key.{n}": n for n in range(2000)})
    same_as_the_sdks([many, many])
    assert "key.0" in otlp._KEYS
    assert len(otlp._KEYS) == 1024
    assert len(otlp._VALUES) == 1024


def test_span_names_are_kept_encoded_up_to_a_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(otlp, "_NAMES", {})
    named = [readable(f"span {n}") for n in range(1100)]
    same_as_the_sdks(named + named)
    assert "span 0" in otlp._NAMES
    assert len(otlp._NAMES) == 1024


@pytest.fixture
def fresh_values(monkeypatch: pytest.MonkeyPatch) -> None:
    """No attribute values kept from other tests (the keys' bound is shared)."""
    monkeypatch.setattr(otlp, "_VALUES", {})


@pytest.mark.usefixtures("fresh_values")
def test_values_seen_before_are_written_as_before_and_equal_values_of_other_types_are_not() -> None:
    values: list[Any] = [1, True, 1.0, "1", 1, False, 0, 0.0, "ok", "ok", 1, True]
    same_as_the_sdks([readable(attributes={"v": value}) for value in values])
    assert otlp._VALUES[b"\x4a", "v"] is not None
    assert set(otlp._VALUES[b"\x4a", "v"] or ()) == {1, "1", 0, "ok"}


@pytest.mark.usefixtures("fresh_values")
def test_a_keys_values_are_kept_up_to_a_bound_and_none_of_them_long() -> None:
    ids = [readable(attributes={"an.id": f"id-{n}", "a.method": "Archive"}) for n in range(100)]
    same_as_the_sdks(ids[:64])
    assert len(otlp._VALUES[b"\x4a", "an.id"] or ()) == 64  # as many as are kept
    same_as_the_sdks(ids[64:65])
    assert otlp._VALUES[b"\x4a", "an.id"] is None  # the 65th: too many, no longer kept
    same_as_the_sdks(ids)
    assert list(otlp._VALUES[b"\x4a", "a.method"] or ()) == ["Archive"]
    long = [readable(attributes={"a.long.one": "x" * 300}) for _ in range(2)]
    same_as_the_sdks(long)
    assert not otlp._VALUES.get((b"\x4a", "a.long.one"))
    # Tag, length, key "k" (3 bytes), value's tag and length, the string's tag
    # and length: 12 bytes around a string of 244, 256 in all, the most kept.
    for size, kept in ((244, True), (245, False)):
        same_as_the_sdks([readable(attributes={"k": "v" * size})])
        assert ("v" * size in (otlp._VALUES.get((b"\x4a", "k")) or {})) is kept
    same_as_the_sdks(ids)  # as before, kept or not


class Receiver:
    """An OTLP/HTTP endpoint on a free loopback port keeping each body."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                owner.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    running = Receiver()
    endpoint = f"http://127.0.0.1:{running.server.server_address[1]}/v1/traces"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", endpoint)
    try:
        yield running
    finally:
        running.server.shutdown()
        running.server.server_close()


def test_the_exporter_sends_the_encoders_bytes_and_the_sdks_for_the_rest(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    sdk_encoded: list[str] = []

    def sdk_encoder(spans: Any) -> Any:
        sdk_encoded.extend(span.name for span in spans)
        return encode_spans(spans)

    monkeypatch.setattr(trace_exporter, "encode_spans", sdk_encoder)
    exporter = otlp.HTTPSpanExporter()
    assert exporter.fast is True  # the installed SDK has the client it sends through
    ours, theirs = [readable("ours")], [readable("theirs", events=[Event("e")])]
    assert exporter.export(ours).name == "SUCCESS"
    assert exporter.export(theirs).name == "SUCCESS"
    exporter.shutdown()  # type: ignore[no-untyped-call]
    assert exporter.export(ours).name == "FAILURE"  # shut down: nothing encoded or sent
    assert sdk_encoded == ["theirs"]
    assert len(receiver.bodies) == 2
    assert receiver.bodies[0] == otlp.encode(ours)
    assert ExportTraceServiceRequest.FromString(receiver.bodies[0]) == encode_spans(ours)
    assert ExportTraceServiceRequest.FromString(receiver.bodies[1]) == encode_spans(theirs)


@pytest.mark.parametrize("fast", [True, False])
def test_the_sidecars_spans_reach_its_exporter_as_they_are_and_go_out_as_the_sdk_would_send_them(
    receiver: Receiver, fast: bool
) -> None:
    """A batch processor in front of `HTTPSpanExporter` is handed the sidecar's
    own spans (no ReadableSpan made); any other processor gets ReadableSpans.
    What is sent is the SDK's encoding of the latter, by the encoder or (no
    fast path) by the SDK itself."""
    exporter = otlp.HTTPSpanExporter()
    if not fast:
        exporter._send = None
    handed: list[type] = []
    export = exporter.export

    def recording(batch: Any) -> Any:
        handed.extend(type(span) for span in batch)
        return export(batch)

    exporter.export = recording  # type: ignore[method-assign, assignment]
    kept = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "under-test"}))
    batch = BatchSpanProcessor(exporter, schedule_delay_millis=600_000)
    tracing.install(provider, [batch, SimpleSpanProcessor(kept)])
    try:
        headers = {"traceparent": TRACEPARENT, "tracestate": "k=v"}
        with tracing.server_span("A/B", headers, {"rpc.system": "grpc", "n": 1 << 40}) as call:
            with tracing.span("store.put", {"yes": True, "ratio": 0.5, "neg": -1}) as put:
                tracing.failed(put, "SlowDown")
            tracing.annotate(call, {"text": "ünïcode", "big": 20_000})
        assert tracing.flush()
    finally:
        tracing.shutdown()
    assert handed == [tracing.Span, tracing.Span]
    finished = kept.get_finished_spans()
    assert [type(span) for span in finished] == [ReadableSpan, ReadableSpan]
    assert receiver.bodies == [encode_spans(finished).SerializeToString()]


def test_nothing_is_set_on_a_span_once_it_has_ended(spans: InMemorySpanExporter) -> None:
    with tracing.span("ended", {"a": 1}) as ended:
        pass
    tracing.annotate(ended, {"b": 2})
    tracing.failed(ended, "Late")
    (span,) = spans.get_finished_spans()
    assert span.attributes == {"a": 1}
    assert span.status.status_code is StatusCode.UNSET


class OneHeader(TextMapPropagator):
    """A propagator of its own header, "x-trace: <trace id hex>"."""

    fields = {"x-trace"}  # noqa: RUF012 (the API's own attribute)

    def extract(self, carrier: Any, context: Any = None, getter: Any = default_getter) -> Any:
        found = getter.get(carrier, "x-trace")
        if not found:
            return context or Context()
        remote = SpanContext(int(found[0], 16), PARENT, True, TraceFlags(1))
        return set_span_in_context(NonRecordingSpan(remote), context)

    def inject(self, carrier: Any, context: Any = None, setter: Any = None) -> None:
        raise NotImplementedError


def test_the_configured_propagators_headers_are_the_ones_read(
    spans: InMemorySpanExporter,
) -> None:
    """Calls with none of the propagators' headers start a trace of their own
    without asking them; the headers are the propagators' (OTEL_PROPAGATORS)."""
    default = propagate.get_global_textmap()
    propagate.set_global_textmap(OneHeader())
    try:
        tracing.install(TracerProvider(), [SimpleSpanProcessor(spans)])
        with tracing.server_span("theirs", [("x-trace", f"{TRACE:032x}")]):
            pass
        with tracing.server_span("not a header it reads", {"traceparent": TRACEPARENT}):
            pass
    finally:
        propagate.set_global_textmap(default)
    theirs, other = spans.get_finished_spans()
    assert theirs.parent is not None
    assert (theirs.context.trace_id, theirs.parent.span_id) == (TRACE, PARENT)
    assert other.parent is None
    assert other.context.trace_id != TRACE


def test_the_configured_sampler_decides() -> None:
    exporter = InMemorySpanExporter()
    tracing.install(TracerProvider(sampler=ALWAYS_OFF), [SimpleSpanProcessor(exporter)])
    try:
        with tracing.server_span("A/B", {}) as call:
            assert call is not None
            assert not call.context.trace_flags.sampled
            with tracing.span("store.put") as put:
                assert put is not None
                assert put.context.trace_id == call.context.trace_id
    finally:
        tracing.shutdown()
    assert exporter.get_finished_spans() == ()


@pytest.mark.parametrize(("flags", "kept"), [("01", 1), ("00", 0)])
def test_a_callers_unsampled_trace_stays_unsampled(flags: str, kept: int) -> None:
    """The default sampler follows the parent: a caller that did not sample
    its trace gets none of the sidecar's spans exported either."""
    exporter = InMemorySpanExporter()
    tracing.install(
        TracerProvider(sampler=ParentBased(TraceIdRatioBased(1.0))),
        [SimpleSpanProcessor(exporter)],
    )
    try:
        traceparent = TRACEPARENT[:-2] + flags
        with tracing.server_span("A/B", {"traceparent": traceparent}), tracing.span("store.put"):
            pass
    finally:
        tracing.shutdown()
    finished = exporter.get_finished_spans()
    assert len(finished) == 2 * kept
    assert all(s.context.trace_id == TRACE for s in finished)


def test_flush_and_shutdown_export_what_the_batch_processor_holds() -> None:
    exporter = InMemorySpanExporter()
    # A schedule far off: nothing leaves the queue unless flushed.
    batch = BatchSpanProcessor(exporter, schedule_delay_millis=600_000)
    tracing.install(TracerProvider(), [batch])
    try:
        with tracing.span("flushed"):
            pass
        assert tracing.flush()
        assert [s.name for s in exporter.get_finished_spans()] == ["flushed"]
        with tracing.span("at shutdown"):
            pass
    finally:
        tracing.shutdown()
    assert [s.name for s in exporter.get_finished_spans()] == ["flushed", "at shutdown"]
    assert tracing.flush()  # off: nothing to flush


def test_the_providers_own_shutdown_exports_what_is_batched() -> None:
    """As the SDK does at the process's exit, whether or not `shutdown()` ran."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    tracing.install(provider, [BatchSpanProcessor(exporter, schedule_delay_millis=600_000)])
    try:
        with tracing.span("left in the queue"):
            pass
        provider.shutdown()
        assert [s.name for s in exporter.get_finished_spans()] == ["left in the queue"]
    finally:
        tracing.shutdown()


def test_a_span_left_by_an_exception_ends_and_the_parent_is_current_again(
    spans: InMemorySpanExporter,
) -> None:
    with tracing.span("outer") as outer:
        with pytest.raises(RuntimeError), tracing.span("inner"):
            raise RuntimeError("not recorded")
        assert tracing.current() is outer
    inner, _ = spans.get_finished_spans()
    assert inner.name == "inner"
    assert inner.events == ()
    assert inner.status.status_code is StatusCode.UNSET


def test_a_span_handed_to_another_thread_parents_the_spans_made_there(
    spans: InMemorySpanExporter,
) -> None:
    with tracing.span("stream"):
        parent = tracing.current()

        def worker() -> None:
            assert tracing.current() is None  # a thread of its own starts with none
            with tracing.span("archive", parent=parent):
                pass

        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
    child, stream = spans.get_finished_spans()
    assert child.parent is not None
    assert (child.parent.span_id, child.context.trace_id) == (
        stream.context.span_id,
        stream.context.trace_id,
    )


def test_a_span_left_from_another_thread_ends_there(spans: InMemorySpanExporter) -> None:
    """gRPC can close a stream's generator, and so leave its span, from a
    thread other than the one that entered it: the span still ends."""
    stream = tracing.span("stream")
    # Entered in a thread of its own (as a pool thread would), not this one's
    # context, which would keep it current for the tests after.
    entering = threading.Thread(target=stream.__enter__)
    entering.start()
    entering.join()
    errors: list[BaseException] = []

    def close() -> None:
        try:
            stream.__exit__(None, None, None)
        except BaseException as err:
            errors.append(err)

    thread = threading.Thread(target=close)
    thread.start()
    thread.join()
    assert errors == []
    assert [s.name for s in spans.get_finished_spans()] == ["stream"]


@pytest.mark.parametrize(
    "traceparent",
    [
        "",  # a new trace
        TRACEPARENT,  # a caller's sampled trace
        TRACEPARENT[:-2] + "00",  # not sampled
        TRACEPARENT[:-2] + "03",  # sampled, random ids
    ],
)
def test_the_default_sampler_decided_without_its_call_decides_as_it_would(
    traceparent: str,
) -> None:
    """parentbased_always_on is decided in tracing.py without calling it; the
    same sampler in another object goes through the SDK's own decision."""

    def decided(sampler: Any) -> list[tuple[Any, ...]]:
        exporter = InMemorySpanExporter()
        tracing.install(TracerProvider(sampler=sampler), [SimpleSpanProcessor(exporter)])
        made = []
        try:
            headers = {"traceparent": traceparent, "tracestate": "k=v"} if traceparent else {}
            with tracing.server_span("A/B", headers, {"a": 1}) as call:
                assert call is not None
                with tracing.span("store.put", {"b": 2}) as put:
                    assert put is not None
                    for span in (call, put):
                        flags = span.context.trace_flags
                        state = tuple(span.context.trace_state.items())
                        made.append((flags, state, span.recording, dict(span.attributes)))
        finally:
            tracing.shutdown()
        return made

    assert tracing_default_is(sampling.DEFAULT_ON)
    assert decided(sampling.DEFAULT_ON) == decided(sampling.ParentBased(sampling.ALWAYS_ON))


def tracing_default_is(sampler: Any) -> bool:
    """The provider's default sampler, read from the environment, is `sampler`."""
    return TracerProvider().sampler is sampler
