"""Which gRPC server model: synchronous `grpc.server`, `grpc.aio`, or the lane, in one run.

    .venv/bin/python -m bench.models [--rounds 3]

Each serves Archive with nothing else (no auth, logs or metrics), in a
process of its own, against SeaweedFS:

- sync: the Archiver and S3 store on `grpc.server` with a pool of 64 threads
  (the sidecar's model);
- aio: the same Archiver on `grpc.aio`, each archive handed to a pool of 64
  threads (the store's writes block);
- aio-native: `grpc.aio` whose handler validates, renders and compresses in
  the event loop and writes with obstore's asyncio `put_async` (no thread
  handoff at all). A prototype: no retries, no deadline budget, no
  existing-copy check, so it is the floor of that model, not a candidate as it
  stands;
- lane: the synchronous server with Archive on a `UnaryLane` (edge/lane.py):
  each call served start to end on one thread waiting on a completion queue
  of its own, no hand-off to a pool thread (the sidecar's model since
  2026-12-03).

In interleaved rounds: p50 latency and server CPU per archive at concurrency
1, throughput and server CPU per archive at concurrency 16.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import grpc.aio

from msgarchive import ArchiveClient
from msgarchive.v1 import archive_service_pb2 as pb
from msgarchive.v1 import archive_service_pb2_grpc as pb_grpc
from msgarchive_server.domain.archive import Archiver
from msgarchive_server.edge.lane import UnaryLane
from msgarchive_server.edge.response import to_response
from msgarchive_server.process.app import ARCHIVE_METHOD
from msgarchive_server.stores.s3 import S3Options, S3Store
from tests.seaweed import SeaweedFS

from .run import cpu_seconds, messages

THREADS = 64


def _archiver(bucket: str, endpoint: str) -> Archiver:
    options = S3Options(bucket=bucket, endpoint_url=endpoint, path_style=True, max_connections=64)
    return Archiver(S3Store(options))


def serve_sync(port: int, bucket: str, endpoint: str, lane: bool = False) -> None:
    archiver = _archiver(bucket, endpoint)

    class Servicer(pb_grpc.ArchiveServiceServicer):
        def Archive(self, request: pb.ArchiveRequest, context: object) -> pb.ArchiveResponse:  # noqa: N802
            return to_response(request.request_id, archiver.archive(request))

    server = grpc.server(futures.ThreadPoolExecutor(THREADS))
    # Archive only: the other RPCs are not measured here.
    pb_grpc.add_ArchiveServiceServicer_to_server(Servicer(), server)  # type: ignore[abstract]
    archive_lane = None
    if lane:
        archive_lane = UnaryLane.attach(server, ARCHIVE_METHOD, [], THREADS)
        assert archive_lane is not None
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    if archive_lane is not None:
        archive_lane.start()
    print("ready", flush=True)
    server.wait_for_termination()


def serve_lane(port: int, bucket: str, endpoint: str) -> None:
    serve_sync(port, bucket, endpoint, lane=True)


def _run_aio(servicer: pb_grpc.ArchiveServiceServicer, port: int) -> None:
    async def main() -> None:
        server = grpc.aio.server()
        pb_grpc.add_ArchiveServiceServicer_to_server(servicer, server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        print("ready", flush=True)
        await server.wait_for_termination()

    asyncio.run(main())


def serve_aio(port: int, bucket: str, endpoint: str) -> None:
    archiver = _archiver(bucket, endpoint)
    pool = ThreadPoolExecutor(THREADS)

    class Servicer(pb_grpc.ArchiveServiceServicer):
        async def Archive(  # noqa: N802
            self, request: pb.ArchiveRequest, context: object
        ) -> pb.ArchiveResponse:
            loop = asyncio.get_running_loop()
            ack = await loop.run_in_executor(pool, archiver.archive, request)
            return to_response(request.request_id, ack)

    _run_aio(Servicer(), port)  # type: ignore[abstract]


def serve_aio_native(port: int, bucket: str, endpoint: str) -> None:
    import obstore

    from msgarchive.keys import location
    from msgarchive.validation import validated
    from msgarchive_server.domain.archive import Ack
    from msgarchive_server.domain.payloads import compress, render

    store = _archiver(bucket, endpoint).store
    writer = store._writer  # type: ignore[attr-defined]

    class Servicer(pb_grpc.ArchiveServiceServicer):
        async def Archive(  # noqa: N802
            self, request: pb.ArchiveRequest, context: object
        ) -> pb.ArchiveResponse:
            message, found = validated(request)
            assert message is not None
            assert not found
            where = location(message, "")
            sent_at_ms = time.time_ns() // 1_000_000
            blob = compress(render(message, message_id=where.message_id, sent_at_ms=sent_at_ms))
            written = await obstore.put_async(
                writer, where.key, blob, mode="create", use_multipart=False,
                attributes={"Content-Type": "application/x-lz4"},
            )  # fmt: skip
            ack = Ack(
                message_id=where.message_id, bucket=bucket, key=where.key,
                sent_at_ms=sent_at_ms, attempts=1, etag=(written["e_tag"] or "").strip('"'),
                version_id=written["version"] or "", already_archived=False,
                stored_bytes=len(blob),
            )  # fmt: skip
            return to_response(request.request_id, ack)

    _run_aio(Servicer(), port)  # type: ignore[abstract]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


MODELS = ("sync", "aio", "aio-native", "lane")


def measure(model: str, seaweed: SeaweedFS, port: int) -> tuple[float, float, float, float]:
    """(p50 ms and server CPU µs per archive at concurrency 1, archives/s and
    server CPU µs per archive at concurrency 16)."""
    bucket = seaweed.new_bucket()
    server = subprocess.Popen(  # noqa: S603 (this module, with our own arguments)
        [sys.executable, "-m", "bench.models", model, str(port), bucket, seaweed.endpoint],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **seaweed.env},
    )
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "ready"
        batch = messages(3000)
        with ArchiveClient(f"127.0.0.1:{port}", options=[("grpc.enable_retries", 0)]) as client:
            for request in batch[:100]:
                client.archive(request)  # warm up
            latencies = []
            cpu0 = cpu_seconds(server.pid)
            for request in batch[100:1100]:
                started = time.perf_counter()
                client.archive(request)
                latencies.append(time.perf_counter() - started)
            cpu_1 = (cpu_seconds(server.pid) - cpu0) / 1000 * 1e6
            cpu0, started = cpu_seconds(server.pid), time.perf_counter()
            with ThreadPoolExecutor(16) as pool:
                list(pool.map(client.archive, batch[1100:]))
            seconds = time.perf_counter() - started
            count = len(batch) - 1100
            cpu_16 = (cpu_seconds(server.pid) - cpu0) / count * 1e6
    finally:
        server.kill()
        server.wait()
    latencies.sort()
    return latencies[len(latencies) // 2] * 1000, cpu_1, count / seconds, cpu_16


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.models")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    got: dict[str, list[tuple[float, float, float, float]]] = {m: [] for m in MODELS}
    with tempfile.TemporaryDirectory() as workdir:
        seaweed = SeaweedFS(Path(workdir))
        seaweed.start()
        try:
            for number in range(args.rounds):
                order = MODELS if number % 2 == 0 else MODELS[::-1]
                for model in order:
                    got[model].append(measure(model, seaweed, free_port()))
        finally:
            seaweed.stop()

    def cell(values: list[float], digits: int) -> str:
        return (
            f"{statistics.median(values):.{digits}f} "
            f"({min(values):.{digits}f}-{max(values):.{digits}f})"
        )

    print(
        f"\n{args.rounds} interleaved rounds, medians (min-max); server CPU from /proc, "
        "in clock ticks (good to 10 µs over 1,000 archives)\n"
    )
    print(
        "| server model | p50 ms, concurrency 1 | server CPU µs/archive, concurrency 1 "
        "| archives/s, concurrency 16 | server CPU µs/archive, concurrency 16 |"
    )
    print("|---|---|---|---|---|")
    for model, runs in got.items():
        columns = list(zip(*runs, strict=True))
        print(
            f"| {model} | {cell(list(columns[0]), 2)} | {cell(list(columns[1]), 0)} "
            f"| {cell(list(columns[2]), 0)} | {cell(list(columns[3]), 0)} |"
        )
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 5:
        serve = {
            "sync": serve_sync,
            "aio": serve_aio,
            "aio-native": serve_aio_native,
            "lane": serve_lane,
        }[sys.argv[1]]
        serve(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    else:
        sys.exit(main())
