"""What a span costs the sidecar's process with tracing on (issue 22).

    .venv/bin/python -m bench.spans [--traces 2000] [--rounds 3]

Traces shaped like an archive's (the call's server span and N child spans,
with the sidecar's attributes) through the sidecar's own tracing setup
(telemetry/tracing.py: the OpenTelemetry SDK, a BatchSpanProcessor and the
OTLP/HTTP exporter) to a loopback sink that answers 200, in rounds that
interleave 1, 2 and 4 spans a trace. CPU is this process's, every thread (the
exporter's included: the batch is flushed before the clock stops), per trace.
No gRPC and no store: the tracing machinery alone.
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from msgarchive_server.telemetry import tracing

ATTRIBUTES = {"rpc.system": "grpc", "rpc.method": "Archive", "msgarchive.channel": "sms"}


class Sink(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


def trace(children: int) -> None:
    with tracing.server_span("msgarchive.v1.ArchiveService/Archive", {}, ATTRIBUTES) as call:
        for _ in range(children):
            with tracing.span("store.put", {"msgarchive.attempt": 1, "msgarchive.bucket": "b"}):
                pass
        tracing.annotate(call, {"msgarchive.outcome": "ok"})


def cpu_per_trace(traces: int, spans: int) -> float:
    """µs of CPU a trace of `spans` spans, export included."""
    started = time.process_time()
    for n in range(traces):
        trace(spans - 1)
        if n % 200 == 199:
            time.sleep(0.005)  # the sidecar's pace, not a burst the queue would drop
    assert tracing.flush()
    return (time.process_time() - started) / traces * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.spans")
    parser.add_argument("--traces", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    sink = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    # The exporter reads its endpoint from the process's environment.
    os.environ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = (
        f"http://127.0.0.1:{sink.server_port}/v1/traces"
    )
    os.environ["OTEL_SERVICE_NAME"] = "msgarchive-bench"
    # Room for every span, so that none is dropped and every one's export is counted.
    os.environ["OTEL_BSP_MAX_QUEUE_SIZE"] = str(4 * args.traces + 1000)
    assert tracing.configure(os.environ)
    try:
        got: dict[int, list[float]] = {1: [], 2: [], 4: []}
        cpu_per_trace(200, 4)  # warm
        for _ in range(args.rounds):
            for spans in got:
                got[spans].append(cpu_per_trace(args.traces, spans))
        for spans, values in got.items():
            print(
                f"{spans} span{'s' if spans > 1 else ''} a trace: "
                f"{statistics.median(values):.0f} µs CPU ({min(values):.0f}-{max(values):.0f}), "
                f"{statistics.median(values) / spans:.0f} µs a span"
            )
    finally:
        tracing.shutdown()
        sink.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
