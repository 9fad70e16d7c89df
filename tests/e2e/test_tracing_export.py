"""The sidecar process exports its spans over OTLP/HTTP when OTEL_* says where.

A small OTLP receiver in the test takes the sidecar's export requests and
decodes them with OpenTelemetry's own protobuf messages.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from msgarchive import ArchiveClient
from tests import samples
from tests.sidecar import SidecarProcess

pytestmark = pytest.mark.e2e


class Receiver:
    """An OTLP/HTTP traces endpoint on a free loopback port."""

    def __init__(self) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        self.paths: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                owner.paths.append(self.path)
                owner.requests.append(ExportTraceServiceRequest.FromString(body))
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def spans(self) -> dict[str, list[str]]:
        """Service name -> the names of the spans it exported."""
        found: dict[str, list[str]] = {}
        for request in self.requests:
            for batch in request.resource_spans:
                service = next(
                    a.value.string_value
                    for a in batch.resource.attributes
                    if a.key == "service.name"
                )
                for scope in batch.scope_spans:
                    found.setdefault(service, []).extend(s.name for s in scope.spans)
        return found


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    try:
        yield running
    finally:
        running.server.shutdown()
        running.server.server_close()


def test_spans_reach_an_otlp_endpoint(receiver: Receiver, tmp_path: Path) -> None:
    sidecar = SidecarProcess(
        ["--listen=127.0.0.1:0", f"--store={tmp_path}"],
        env={
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_SERVICE_NAME": "msgarchive-under-test",
        },
    ).start()
    try:
        assert sidecar.serving["tracing"] is True
        with ArchiveClient(sidecar.address) as client:
            client.archive(samples.sms_request())
    finally:
        assert sidecar.stop() == 0  # a drained sidecar exports what it buffered
    assert set(receiver.paths) == {"/v1/traces"}
    names = receiver.spans()["msgarchive-under-test"]
    assert "msgarchive.v1.ArchiveService/Archive" in names
    assert "store.put" in names


def test_without_otel_settings_the_sidecar_says_tracing_is_off(tmp_path: Path) -> None:
    sidecar = SidecarProcess(["--listen=127.0.0.1:0", f"--store={tmp_path}"]).start()
    try:
        assert sidecar.serving["tracing"] is False
    finally:
        assert sidecar.stop() == 0
