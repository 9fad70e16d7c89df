"""Which gRPC server model: synchronous `grpc.server` or `grpc.aio`, in one run.

    .venv/bin/python -m bench.models

Both serve Archive through the same Archiver and S3 store, with nothing else
(no auth, logs or metrics), each in a process of its own, against SeaweedFS:
the synchronous server on a pool of 64 threads; the asyncio server handing
each archive (boto3 blocks) to a pool of 64 threads. Measured: p50 latency at
concurrency 1, throughput at concurrency 16, server CPU per archive.
"""

from __future__ import annotations

import asyncio
import os
import socket
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
from msgarchive_server.edge.response import to_response
from msgarchive_server.stores.s3 import S3Options, S3Store
from tests.seaweed import SeaweedFS

from .run import cpu_seconds, messages

THREADS = 64


def _archiver(bucket: str, endpoint: str) -> Archiver:
    options = S3Options(bucket=bucket, endpoint_url=endpoint, path_style=True, max_connections=64)
    return Archiver(S3Store(options))


def serve_sync(port: int, bucket: str, endpoint: str) -> None:
    archiver = _archiver(bucket, endpoint)

    class Servicer(pb_grpc.ArchiveServiceServicer):
        def Archive(self, request: pb.ArchiveRequest, context: object) -> pb.ArchiveResponse:  # noqa: N802
            return to_response(request.request_id, archiver.archive(request))

    server = grpc.server(futures.ThreadPoolExecutor(THREADS))
    # Archive only: the other RPCs are not measured here.
    pb_grpc.add_ArchiveServiceServicer_to_server(Servicer(), server)  # type: ignore[abstract]
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print("ready", flush=True)
    server.wait_for_termination()


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

    async def main() -> None:
        server = grpc.aio.server()
        pb_grpc.add_ArchiveServiceServicer_to_server(Servicer(), server)  # type: ignore[abstract]
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        print("ready", flush=True)
        await server.wait_for_termination()

    asyncio.run(main())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def measure(model: str, seaweed: SeaweedFS, port: int) -> tuple[float, float, float]:
    """(p50 ms at concurrency 1, archives/s at concurrency 16, server CPU ms per archive)."""
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
        batch = messages(2500)
        with ArchiveClient(f"127.0.0.1:{port}", options=[("grpc.enable_retries", 0)]) as client:
            for request in batch[:50]:
                client.archive(request)  # warm up
            latencies = []
            for request in batch[50:500]:
                started = time.perf_counter()
                client.archive(request)
                latencies.append(time.perf_counter() - started)
            cpu0, started = cpu_seconds(server.pid), time.perf_counter()
            with ThreadPoolExecutor(16) as pool:
                list(pool.map(client.archive, batch[500:]))
            seconds = time.perf_counter() - started
            cpu = cpu_seconds(server.pid) - cpu0
    finally:
        server.kill()
        server.wait()
    latencies.sort()
    count = len(batch) - 500
    return latencies[len(latencies) // 2] * 1000, count / seconds, cpu / count * 1000


def main() -> int:
    with tempfile.TemporaryDirectory() as workdir:
        seaweed = SeaweedFS(Path(workdir))
        seaweed.start()
        try:
            rows = [(model, *measure(model, seaweed, free_port())) for model in ("sync", "aio")]
        finally:
            seaweed.stop()
    print(
        "\n| server model | p50 ms, concurrency 1 | archives/s, concurrency 16 | CPU ms/archive |"
    )
    print("|---|---|---|---|")
    for model, p50, rate, cpu in rows:
        print(f"| {model} | {p50:.2f} | {rate:.0f} | {cpu:.2f} |")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 5:
        serve = {"sync": serve_sync, "aio": serve_aio}[sys.argv[1]]
        serve(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    else:
        sys.exit(main())
