"""Traces from the sidecar in this process, over real sockets, into SeaweedFS.

The SDK's in-memory exporter collects the sidecar's spans; a sender's own span
travels in the client's `traceparent` metadata (or HTTP header), and the
sidecar's spans continue its trace.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from msgarchive import ArchiveClient, InvalidMessage
from msgarchive.v1 import archive_service_pb2 as pb
from msgarchive_server.process.app import Sidecar, build_server
from msgarchive_server.process.config import Settings
from msgarchive_server.telemetry import tracing
from tests import samples
from tests.faults import Fault, FaultProxy
from tests.seaweed import SeaweedFS

pytestmark = pytest.mark.integration

ARCHIVE = "msgarchive.v1.ArchiveService/Archive"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.install(TracerProvider(), [SimpleSpanProcessor(exporter)])
    try:
        yield exporter
    finally:
        tracing.shutdown()


@pytest.fixture
def sidecar(seaweed: SeaweedFS, bucket: str, proxy: FaultProxy) -> Iterator[Sidecar]:
    store = seaweed.store(bucket, endpoint=proxy.endpoint)
    settings = Settings(
        listen="127.0.0.1:0", http_listen="127.0.0.1:0", threads=8, max_in_flight=4, max_streams=2
    )
    running = build_server(settings, store)
    running.start()
    try:
        yield running
    finally:
        running.stop(grace=1)


def children(of: ReadableSpan, spans: tuple[ReadableSpan, ...]) -> list[ReadableSpan]:
    """The spans whose parent is `of`, in the order they started."""
    found = [s for s in spans if s.parent is not None and s.parent.span_id == of.context.span_id]
    return sorted(found, key=lambda s: s.start_time or 0)


def sender_span() -> Any:
    """A span of the sender's own tracer (not the sidecar's), made current."""
    return TracerProvider().get_tracer("sender").start_as_current_span("send campaign")


def test_an_archive_that_needed_two_retries(
    sidecar: Sidecar, proxy: FaultProxy, spans: InMemorySpanExporter
) -> None:
    proxy.queue(Fault.ERROR_500, 2)
    with sender_span() as sender, ArchiveClient(f"127.0.0.1:{sidecar.port}") as client:
        ack = client.archive(samples.sms_request())
    assert ack.attempts == 3
    finished = spans.get_finished_spans()
    (rpc,) = [s for s in finished if s.name == ARCHIVE]
    # It continues the sender's trace, as a server span.
    assert rpc.kind is SpanKind.SERVER
    assert rpc.context.trace_id == sender.get_span_context().trace_id
    assert rpc.parent is not None
    assert rpc.parent.span_id == sender.get_span_context().span_id
    assert rpc.attributes is not None
    assert {k: rpc.attributes[k] for k in ("rpc.grpc.status_code", "msgarchive.attempts")} == {
        "rpc.grpc.status_code": 0,
        "msgarchive.attempts": 3,
    }
    steps = children(rpc, finished)
    assert [s.name for s in steps] == [
        "store.put",
        "retry.wait",
        "store.put",
        "retry.wait",
        "store.put",
    ]
    puts = [s for s in steps if s.name == "store.put"]
    outcome = [
        (
            dict(s.attributes or {}).get("msgarchive.attempt"),
            dict(s.attributes or {}).get("msgarchive.store.result"),
            dict(s.attributes or {}).get("msgarchive.store.error"),
            s.status.status_code,
        )
        for s in puts
    ]
    assert outcome == [
        (1, "transient", "InternalError", StatusCode.ERROR),
        (2, "transient", "InternalError", StatusCode.ERROR),
        (3, "ok", None, StatusCode.UNSET),
    ]
    waits = [s for s in steps if s.name == "retry.wait"]
    assert all(
        isinstance(dict(s.attributes or {})["msgarchive.retry.wait_ms"], float) for s in waits
    )


def _everything_said(finished: tuple[ReadableSpan, ...]) -> str:
    """Every name, attribute, event and status text of every span, as one text."""
    said = []
    for span in finished:
        said += [span.name, json.dumps(dict(span.attributes or {})), span.status.description or ""]
        said += [json.dumps(dict(e.attributes or {})) + e.name for e in span.events]
    return "\n".join(said)


def test_no_span_carries_content_addresses_phone_numbers_or_user_ids(
    sidecar: Sidecar, proxy: FaultProxy, spans: InMemorySpanExporter
) -> None:
    proxy.queue(Fault.ERROR_500, 1)
    requests = [make() for make in samples.REQUESTS.values()]
    with ArchiveClient(f"127.0.0.1:{sidecar.port}") as client:
        for request in requests:
            client.archive(request)
        bad = samples.sms_request()
        bad.sms.to = "+1 555 0"  # refused: its field is named, not its value
        with pytest.raises(InvalidMessage):
            client.archive(bad)
        assert all(result.archived for result in client.archive_many(requests))
    said = _everything_said(spans.get_finished_spans())
    assert "store.put" in said  # the spans were there to read
    # The values, and the normalized forms the sidecar derives from them.
    private = {"+1 555 0", "jane.doe@example.com", "15555555555", "Flat 20% off", "Today only"}
    for request in requests:
        private |= {request.customer_identity, request.device_identity}
        message = getattr(request, request.WhichOneof("message") or "")
        for name in ("to", "body", "subject", "html_body", "plaintext_body"):
            value = getattr(message, name, "")
            if value:
                private.add(value)
    private.discard("")
    assert {value for value in private if value in said} == set()


def test_a_stream_has_a_span_per_message_under_its_own(
    sidecar: Sidecar, spans: InMemorySpanExporter
) -> None:
    requests = [samples.sms_request(), samples.email_request()]
    with ArchiveClient(f"127.0.0.1:{sidecar.port}") as client:
        results = list(client.archive_many(requests))
    assert all(r.archived for r in results)
    finished = spans.get_finished_spans()
    (stream,) = [s for s in finished if s.name.endswith("/ArchiveStream")]
    messages = children(stream, finished)
    assert [s.name for s in messages] == ["archive", "archive"]
    for message in messages:
        assert [s.name for s in children(message, finished)] == ["store.put"]
        timed = dict(message.attributes or {})
        assert {"msgarchive.validate_us", "msgarchive.render_us"} <= set(timed)
        assert isinstance(timed["msgarchive.json_bytes"], int)
        assert timed["msgarchive.json_bytes"] > 0


def test_the_http_view_continues_the_callers_trace(
    sidecar: Sidecar, spans: InMemorySpanExporter
) -> None:
    assert sidecar.http is not None
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    request = urllib.request.Request(
        f"http://127.0.0.1:{sidecar.http.port}/v1/archival/view",
        data=json.dumps({"event_name": "SMS Sent"}).encode(),
        headers={"traceparent": f"00-{trace_id}-{parent_id}-01"},
    )
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(request, timeout=30)  # noqa: S310
    assert answer.value.code == 400
    (span,) = [s for s in spans.get_finished_spans() if s.name == "POST /v1/archival/view"]
    assert (format(span.context.trace_id, "032x"), span.kind) == (trace_id, SpanKind.SERVER)
    assert span.parent is not None
    assert format(span.parent.span_id, "016x") == parent_id
    assert dict(span.attributes or {})["http.response.status_code"] == 400
    assert span.status.status_code is StatusCode.UNSET  # the caller's mistake


def test_reads_are_traced_and_health_checks_and_reflection_are_not(
    sidecar: Sidecar, spans: InMemorySpanExporter
) -> None:
    address = f"127.0.0.1:{sidecar.port}"
    with grpc.insecure_channel(address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=30
        )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        listing = reflection_pb2.ServerReflectionRequest(list_services="")  # as buf curl does
        replies = list(
            reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
                iter([listing]), timeout=30
            )
        )
        assert replies[0].list_services_response.service
    with ArchiveClient(address) as client:
        ack = client.archive(samples.push_request())
        client.get_archived_message(pb.GetArchivedMessageRequest(key=ack.key))
    names = [s.name for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert names == [ARCHIVE, "msgarchive.v1.ArchiveService/GetArchivedMessage"]
