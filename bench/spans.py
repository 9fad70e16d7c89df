"""What a span costs the sidecar's process with tracing on (issue 22).

    .venv/bin/python -m bench.spans [--traces 2000] [--rounds 3]

Traces shaped like an archive's, through the sidecar's own tracing setup
(telemetry/tracing.py: the OpenTelemetry SDK, a BatchSpanProcessor and the
OTLP/HTTP exporter) to a sink in a process of its own that answers 200, in
rounds that interleave 1, 2 and 4 spans a trace. A trace is the call's server
span with the attributes the sidecar gives an Archive call, and N-1 children
with a store write's (2 spans: an archive written at its first attempt; 4:
three attempts, their spans alike). The ids, sizes and timings change from one trace to
the next, as the sidecar's do. CPU is this process's, every thread (the
exporter's included: the batch is flushed before the clock stops), per trace,
and apart, the calling thread's. No gRPC and no store: the tracing machinery
alone; in the running sidecar the same spans cost more (docs/benchmarks.md,
"Tracing in the running sidecar").
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from bench.run import SpanSink
from msgarchive_server.telemetry import tracing


def trace(children: int, n: int) -> None:
    """One archive's trace, the sidecar's attributes on its spans (set where
    edge/interceptors.py, edge/calls.py and domain/archive.py set them)."""
    request_id = f"5f3a9c0e1b2d-{n:x}"
    message_id = f"{n:064x}"  # a SHA-256 in hex, as keys.message_id
    call_attributes = {
        "rpc.system": "grpc",
        "rpc.service": "msgarchive.v1.ArchiveService",
        "rpc.method": "Archive",
        "msgarchive.request_id": request_id,
    }
    with tracing.server_span("msgarchive.v1.ArchiveService/Archive", (), call_attributes) as call:
        tracing.note(
            {
                "msgarchive.message_id": message_id,
                "msgarchive.json_bytes": 700 + n % 300,
                "msgarchive.validate_us": 20 + n % 17,
                "msgarchive.render_us": 30 + n % 23,
            }
        )
        for attempt in range(1, children + 1):
            store_attributes = {
                "msgarchive.attempt": attempt,
                "msgarchive.store.bytes": 500 + n % 250,
            }
            with tracing.span("store.put", store_attributes):
                tracing.note(
                    {"msgarchive.store.result": "ok", "msgarchive.already_archived": False}
                )
        tracing.note(
            {
                "msgarchive.channel": "sms",
                "msgarchive.message_id": message_id,
                "msgarchive.attempts": max(children, 1),
                "msgarchive.already_archived": False,
            }
        )
        tracing.annotate(call, {"rpc.grpc.status_code": 0})


def cpu_per_trace(traces: int, spans: int, first: int = 0) -> tuple[float, float]:
    """µs of CPU a trace of `spans` spans: the whole process's, export
    included, and the calling thread's."""
    started, own = time.process_time(), time.thread_time()
    for n in range(first, first + traces):
        trace(spans - 1, n)
        if n % 200 == 199:
            time.sleep(0.005)  # the sidecar's pace, not a burst the queue would drop
    own = time.thread_time() - own
    assert tracing.flush()
    return (time.process_time() - started) / traces * 1e6, own / traces * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.spans")
    parser.add_argument("--traces", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    sink = SpanSink()
    # The exporter reads its endpoint from the process's environment.
    os.environ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = f"{sink.endpoint}/v1/traces"
    os.environ["OTEL_SERVICE_NAME"] = "msgarchive-bench"
    # Room for every span, so that none is dropped and every one's export is counted.
    os.environ["OTEL_BSP_MAX_QUEUE_SIZE"] = str(4 * args.traces + 1000)
    assert tracing.configure(os.environ)
    try:
        got: dict[int, list[tuple[float, float]]] = {1: [], 2: [], 4: []}
        cpu_per_trace(200, 4)  # warm
        first = 200
        for _ in range(args.rounds):
            for spans in got:
                got[spans].append(cpu_per_trace(args.traces, spans, first))
                first += args.traces
        for spans, values in got.items():
            whole = [v[0] for v in values]
            own = [v[1] for v in values]
            print(
                f"{spans} span{'s' if spans > 1 else ''} a trace: "
                f"{statistics.median(whole):.0f} µs CPU ({min(whole):.0f}-{max(whole):.0f}), "
                f"{statistics.median(whole) / spans:.0f} µs a span; "
                f"the calling thread {statistics.median(own):.0f} µs "
                f"({min(own):.0f}-{max(own):.0f})"
            )
    finally:
        tracing.shutdown()
        sink.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
