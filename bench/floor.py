"""Where a unary Archive's CPU goes, and the floor under it (issue 22).

    .venv/bin/python -m bench.floor [--calls 2000] [--rounds 3]

At concurrency 1, in interleaved rounds against SeaweedFS, CPU per call in
each process, beside a direct boto3 put in the same round (`make bench`'s
baseline, the sender's whole cost):

- boto3 put: put_object from this process, as bench.run's baseline;
- sidecar: the whole sidecar (`build_server`, its S3 store) on SeaweedFS,
  Archive through the client library, as bench.run's concurrency 1;
- the store's write: the sidecar's S3Store.put (obstore) from this process,
  what each archive's write costs wherever it runs;
- gRPC server, nothing else: grpcio's sync server (a pool of 64 threads)
  whose Archive answers a ready response; the floor of any sidecar built on
  it, and the client library's own cost as the sender; and the same server
  with Archive on a `UnaryLane` (edge/lane.py, the sidecar's model): each
  call served on one thread, no hand-off to the pool;
- sidecar, store answering at once: the whole sidecar (interceptors, log
  line, metrics, validation, rendering, compression) over a store whose
  every write succeeds at once, at log level info and at warning (no `rpc`
  line), and at info with tracing on (every span exported over OTLP/HTTP to
  a sink in a process of its own).

The sidecar's CPU an archive is about its figure over the answering store
plus the store's write; the gRPC server's share of it cannot go below the
do-nothing server's. Then what waiting costs on this machine: two Python
threads handing a token back and forth, the second holding it for 0 to 10 ms
before it answers (no work at all), CPU per round trip.
"""

from __future__ import annotations

import argparse
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent import futures
from pathlib import Path

import grpc

from msgarchive import ArchiveClient
from msgarchive.v1 import archive_service_pb2 as pb
from msgarchive.v1 import archive_service_pb2_grpc as pb_grpc
from msgarchive_server.edge.lane import UnaryLane
from msgarchive_server.process.app import ARCHIVE_METHOD
from msgarchive_server.stores import PutResult
from tests.seaweed import SeaweedFS
from tests.unit.fakes import FakeStore

from .models import THREADS, free_port
from .run import SpanSink, copies, cpu_seconds, messages, run_baseline


class AnsweringStore(FakeStore):
    """Every write succeeds at once, and nothing is kept."""

    def put(self, key: str, body: bytes, content_type: str = "") -> PutResult:
        return PutResult("0" * 32, "v1")


_READY = pb.ArchiveResponse(request_id="0", message_id="0" * 26, bucket="b", key="k" * 80)


def serve(kind: str, port: int, bucket: str = "", endpoint: str = "") -> None:
    """In the server's own process: `echo` (`echo-lane`), `sidecar-info` / `sidecar-warning` /
    `sidecar-traced` (the answering store; traced to the OTLP endpoint in the
    environment), or `sidecar-s3` (the S3 store at `endpoint`)."""
    if kind in ("echo", "echo-lane"):

        class Echo(pb_grpc.ArchiveServiceServicer):
            def Archive(self, request: pb.ArchiveRequest, context: object) -> pb.ArchiveResponse:  # noqa: N802
                return _READY

        server = grpc.server(futures.ThreadPoolExecutor(THREADS))
        pb_grpc.add_ArchiveServiceServicer_to_server(Echo(), server)  # type: ignore[abstract]
        lane = (
            UnaryLane.attach(server, ARCHIVE_METHOD, [], THREADS) if kind == "echo-lane" else None
        )
        server.add_insecure_port(f"127.0.0.1:{port}")
        server.start()
        if lane is not None:
            lane.start()
    else:
        from msgarchive_server.process.app import build_server
        from msgarchive_server.process.config import Settings
        from msgarchive_server.telemetry.logs import configure_logging

        configure_logging("warning" if kind == "sidecar-warning" else "info", "json")
        if kind == "sidecar-traced":
            from msgarchive_server.telemetry import tracing

            assert tracing.configure(os.environ)
        listen = f"127.0.0.1:{port}"
        if kind == "sidecar-s3":  # its store built from the settings, as `serve` builds it
            settings = Settings(
                listen=listen, store=f"s3://{bucket}", s3_endpoint_url=endpoint, s3_path_style=True
            )
            build_server(settings).start()
        else:
            build_server(Settings(listen=listen), AnsweringStore()).start()
    print("ready", file=sys.stderr, flush=True)  # stdout has the log lines
    while True:
        time.sleep(3600)


def served(
    kind: str, calls: int, *store: str, env: dict[str, str] | None = None
) -> tuple[float, float, float]:
    """(server, sender) CPU µs and wall ms per Archive call to a `serve(kind)` process."""
    port = free_port()
    server = subprocess.Popen(  # noqa: S603 (this module, with our own arguments)
        [sys.executable, "-m", "bench.floor", "serve", kind, str(port), *store],
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,  # the log lines: written, not kept
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stderr is not None
        while server.stderr.readline().strip() != "ready":
            if server.poll() is not None:
                raise RuntimeError(f"the {kind} server exited with {server.returncode}")
        batch = messages(calls + 100)
        with ArchiveClient(f"127.0.0.1:{port}", options=[("grpc.enable_retries", 0)]) as client:
            for request in batch[:100]:
                client.archive(request)  # warm up
            server0, sender0 = cpu_seconds(server.pid), time.process_time()
            started = time.perf_counter()
            for request in batch[100:]:
                client.archive(request)
            wall = time.perf_counter() - started
            server_cpu = cpu_seconds(server.pid) - server0
            sender_cpu = time.process_time() - sender0
    finally:
        server.kill()
        server.wait()
    return server_cpu / calls * 1e6, sender_cpu / calls * 1e6, wall / calls * 1e3


def store_writes(seaweed: SeaweedFS, calls: int, round_number: int) -> tuple[float, float]:
    """CPU µs (obstore's threads included) and wall ms per S3Store.put from this process."""
    store = seaweed.store(seaweed.new_bucket())
    prepared = copies(messages(calls + 100, first=round_number * (calls + 100)))
    for key, blob in prepared[:100]:
        store.put(key, blob)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for key, blob in prepared[100:]:
        store.put(key, blob)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    store.close()
    return cpu / calls * 1e6, wall / calls * 1e3


def waiting_cost(hold_ms: float, trips: int) -> float:
    """CPU µs (this process) per round trip between two threads that do no work
    but hold the token `hold_ms` each time: what blocking and waking cost."""
    there: queue.SimpleQueue[int | None] = queue.SimpleQueue()
    back: queue.SimpleQueue[int] = queue.SimpleQueue()

    def holder() -> None:
        while (token := there.get()) is not None:
            if hold_ms:
                time.sleep(hold_ms / 1000)
            back.put(token)

    thread = threading.Thread(target=holder)
    thread.start()
    started = time.process_time()
    for token in range(trips):
        there.put(token)
        back.get()
    took = time.process_time() - started
    there.put(None)
    thread.join()
    return took / trips * 1e6


Row = tuple[str, str]  # (mode, "sender" | "server" CPU µs, or "wall" ms) per call


def one_round(seaweed: SeaweedFS, sink: SpanSink, calls: int, number: int) -> dict[Row, float]:
    """Every mode once, in this round's order."""
    assert seaweed.process is not None
    store_pid = seaweed.process.pid
    s3 = seaweed.client()
    batch = messages(calls, first=10_000_000 + number * calls)

    def baseline() -> dict[Row, float]:
        run = run_baseline(s3, seaweed.new_bucket(), batch, 1, store_pid)
        return {
            ("boto3 put", "sender"): run.cpu["sender"] / calls * 1e6,
            ("boto3 put", "wall"): run.seconds / calls * 1e3,
        }

    def store() -> dict[Row, float]:
        cpu_us, wall_ms = store_writes(seaweed, calls, number)
        mode = "the store's write (S3Store.put)"
        return {(mode, "sender"): cpu_us, (mode, "wall"): wall_ms}

    def server(
        kind: str, mode: str, *store: str, env: dict[str, str] | None = None
    ) -> Callable[[], dict[Row, float]]:
        def run() -> dict[Row, float]:
            server_us, sender_us, wall_ms = served(kind, calls, *store, env=env)
            return {
                (mode, "server"): server_us,
                (mode, "sender"): sender_us,
                (mode, "wall"): wall_ms,
            }

        return run

    modes = [
        baseline,
        server("sidecar-s3", "sidecar", seaweed.new_bucket(), seaweed.endpoint),
        store,
        server("echo", "gRPC server, nothing else"),
        server("echo-lane", "the same, Archive on a lane"),
        server("sidecar-info", "sidecar, store answering at once"),
        server("sidecar-warning", "the same, log level warning"),
        server(
            "sidecar-traced",
            "the same, log level info, tracing on",
            env={"OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint},
        ),
    ]
    got: dict[Row, float] = {}
    for measure in modes if number % 2 == 0 else modes[::-1]:
        got.update(measure())
    return got


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.floor")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    calls = args.calls
    cpu: dict[Row, list[float]] = {}
    ratio: dict[Row, list[float]] = {}
    with tempfile.TemporaryDirectory() as workdir:
        seaweed = SeaweedFS(Path(workdir))
        seaweed.start()
        os.environ.update(seaweed.env)  # the sidecar's credentials, for its S3 store
        sink = SpanSink()
        try:
            for number in range(args.rounds):
                got = one_round(seaweed, sink, calls, number)
                base = got[("boto3 put", "sender")]
                for row, value in got.items():
                    cpu.setdefault(row, []).append(value)
                    if row[1] != "wall":
                        ratio.setdefault(row, []).append(value / base)
        finally:
            sink.stop()
            seaweed.stop()

    def cell(values: list[float], digits: int, suffix: str = "") -> str:
        middle = statistics.median(values)
        return f"{middle:.{digits}f}{suffix} ({min(values):.{digits}f}-{max(values):.{digits}f})"

    print(
        f"\n{args.rounds} interleaved rounds of {calls} calls at concurrency 1, medians "
        "(min-max); wall time and CPU (every thread of the process) per call; x: of the "
        "same round's boto3 put, the sender's whole cost\n"
    )
    print("| mode | wall ms/call | sender CPU µs | x | server CPU µs | x |")
    print("|---|---|---|---|---|---|")
    for mode in dict.fromkeys(mode for mode, _ in cpu):
        cells = [cell(cpu[(mode, "wall")], 2)]
        for process in ("sender", "server"):
            row = (mode, process)
            cells += [cell(cpu[row], 0), cell(ratio[row], 2, "x")] if row in cpu else ["-", "-"]
        print(f"| {mode} | " + " | ".join(cells) + " |")
    holds = (0.0, 1.0, 3.0, 10.0)
    waits = {hold: [waiting_cost(hold, 300) for _ in range(args.rounds)] for hold in holds}
    print("\nWhat waiting costs: CPU µs per round trip of a token between two threads")
    print("that hold it the time given and do nothing else, medians (min-max)\n")
    print("| held | " + " | ".join(f"{hold:g} ms" for hold in holds) + " |")
    print("|---|" + "---|" * len(holds))
    print("| CPU µs a round trip | " + " | ".join(cell(waits[h], 0) for h in holds) + " |")
    return 0


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "serve":
        serve(sys.argv[2], int(sys.argv[3]), *sys.argv[4:])
    else:
        sys.exit(main())
