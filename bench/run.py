"""`make bench`: the sidecar against direct boto3 puts, in one run, on SeaweedFS.

Every run stores the same messages (the same compressed bytes, under the same
keys) into a fresh bucket:

- baseline: boto3 put_object, as the sidecar sends it (Content-MD5,
  If-None-Match), from this process: one thread, and a pool of 16 threads
- Archive (unary) at concurrency 1 and 16, through the client library
- ArchiveStream with a window of 16 and of 64

For each: archives/s, p50/p99 latency, CPU seconds per archive (the
sidecar's; for the baseline, this process's own) and peak RSS, and each
figure's ratio to the baseline from the same run: concurrency 1 against the
one-thread baseline, the rest against the 16-thread one. Then a memory check:
the sidecar's RSS after --rss-messages archives against after a tenth of them.
Exits non-zero if any message was lost or failed.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from msgarchive import ArchiveClient
from msgarchive.keys import location
from msgarchive.v1 import archive_service_pb2 as pb
from msgarchive_server.domain.payloads import compress, render
from tests import samples
from tests.seaweed import SeaweedFS, keys_in
from tests.sidecar import SidecarProcess, s3_sidecar

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

CONCURRENCY = 16
BASE_1 = "boto3 put, 1 thread"
BASE_N = f"boto3 put, {CONCURRENCY} threads"
# name, baseline, sidecar flags, unary concurrency or (negative) a stream's window
PLANS = [
    ("Archive, concurrency 1", BASE_1, [], 1),
    (f"Archive, concurrency {CONCURRENCY}", BASE_N, [], CONCURRENCY),
    ("ArchiveStream, window 16", BASE_N, ["--stream-window=16"], -16),
    (
        "ArchiveStream, window 64",
        BASE_N,
        ["--stream-window=64", "--max-in-flight=64", "--threads=80"],
        -64,
    ),
]


@dataclass
class Result:
    name: str
    baseline: str  # the name of the row it is compared with ("" for a baseline)
    seconds: float
    latencies: list[float]
    cpu_seconds: float | None
    peak_rss: int | None
    failures: int = 0
    missing: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds

    @property
    def cpu_ms_per_archive(self) -> float | None:
        if self.cpu_seconds is None:
            return None
        return self.cpu_seconds / len(self.latencies) * 1000

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def messages(count: int) -> list[pb.ArchiveRequest]:
    """A mix of all four channels, every message with its own id."""
    makers = list(samples.REQUESTS.values())
    out = []
    for n in range(count):
        request = makers[n % 4](created_at_ms=samples.CREATED_AT_MS + n)
        request.request_id = str(n)
        out.append(request)
    return out


# --- process figures (Linux /proc) ---------------------------------------------------


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime + stime
    return ticks / 100.0  # USER_HZ


def rss_bytes(pid: int, key: str = "VmHWM") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {key} for {pid}")


# --- runs -----------------------------------------------------------------------------


def run_baseline(
    name: str, s3: S3Client, bucket: str, bodies: list[tuple[str, bytes]], threads: int
) -> Result:
    """Direct puts of the compressed copies, as the sidecar sends them."""
    import base64

    prepared = [
        (key, blob, base64.b64encode(hashlib.md5(blob, usedforsecurity=False).digest()).decode())
        for key, blob in bodies
    ]

    def put(item: tuple[str, bytes, str]) -> float:
        key, blob, md5 = item
        started = time.perf_counter()
        s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=blob,
            ContentMD5=md5,
            ContentType="application/x-lz4",
            IfNoneMatch="*",
        )
        return time.perf_counter() - started

    cpu0, started = time.process_time(), time.perf_counter()
    if threads == 1:
        latencies = [put(item) for item in prepared]
    else:
        with ThreadPoolExecutor(threads) as pool:
            latencies = list(pool.map(put, prepared))
    seconds = time.perf_counter() - started
    result = Result(name, "", seconds, latencies, time.process_time() - cpu0, None)
    result.missing = len(bodies) - len(keys_in(s3, bucket))
    return result


def run_unary(
    name: str,
    baseline: str,
    sidecar: SidecarProcess,
    batch: list[pb.ArchiveRequest],
    concurrency: int,
) -> Result:
    pid = sidecar.process.pid if sidecar.process else 0
    failures = 0
    lock = threading.Lock()

    with ArchiveClient(sidecar.address, options=[("grpc.enable_retries", 0)]) as client:

        def archive(request: pb.ArchiveRequest) -> float:
            nonlocal failures
            started = time.perf_counter()
            try:
                client.archive(request)
            except Exception:
                with lock:
                    failures += 1
            return time.perf_counter() - started

        client.archive(samples.sms_request(created_at_ms=1))  # warm the channel
        cpu0, started = cpu_seconds(pid), time.perf_counter()
        if concurrency == 1:
            latencies = [archive(r) for r in batch]
        else:
            with ThreadPoolExecutor(concurrency) as pool:
                latencies = list(pool.map(archive, batch))
        seconds = time.perf_counter() - started
    cpu = cpu_seconds(pid) - cpu0
    return Result(name, baseline, seconds, latencies, cpu, rss_bytes(pid), failures=failures)


def run_stream(
    name: str,
    baseline: str,
    sidecar: SidecarProcess,
    batch: list[pb.ArchiveRequest],
    window: int,
) -> Result:
    """One stream, the sender keeping `window` messages outstanding (as a pipelining
    sender would), so latency is a message's time in flight, not in a queue."""
    pid = sidecar.process.pid if sidecar.process else 0
    sent_at: dict[str, float] = {}
    outstanding = threading.Semaphore(window)

    def paced() -> Iterator[pb.ArchiveRequest]:
        for request in batch:
            outstanding.acquire()
            sent_at[request.request_id] = time.perf_counter()
            yield request

    with ArchiveClient(sidecar.address) as client:
        client.archive(samples.sms_request(created_at_ms=1))  # warm the channel
        cpu0, started = cpu_seconds(pid), time.perf_counter()
        latencies, failures = [], 0
        for result in client.archive_many(paced()):
            latencies.append(time.perf_counter() - sent_at[result.request_id])
            outstanding.release()
            failures += 0 if result.archived else 1
        seconds = time.perf_counter() - started
    cpu = cpu_seconds(pid) - cpu0
    return Result(name, baseline, seconds, latencies, cpu, rss_bytes(pid), failures=failures)


def rss_growth(seaweed: SeaweedFS, total: int) -> tuple[int, int]:
    """The sidecar's RSS after a tenth of `total` stream archives, and after all."""
    bucket = seaweed.new_bucket()
    sidecar = s3_sidecar(bucket, seaweed.endpoint, seaweed.env)
    assert sidecar.process is not None
    pid = sidecar.process.pid
    try:
        with ArchiveClient(sidecar.address) as client:
            tenth = total // 10
            batch = messages(total)
            for _ in client.archive_many(batch[:tenth]):
                pass
            early = rss_bytes(pid, "VmRSS")
            for _ in client.archive_many(batch[tenth:]):
                pass
            late = rss_bytes(pid, "VmRSS")
    finally:
        sidecar.kill()
    return early, late


# --- report -----------------------------------------------------------------------------


def ratio(value: float | None, base: float | None) -> str:
    if value is None or not base:
        return ""
    return f" ({value / base:.2f}x)"


def table(results: list[Result]) -> str:
    by_name = {r.name: r for r in results}
    rows = [
        "| run | archives/s | p50 ms | p99 ms | CPU ms/archive | peak RSS MiB |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        b = by_name.get(r.baseline)
        p50, p99, cpu = r.percentile(0.5), r.percentile(0.99), r.cpu_ms_per_archive
        cells = [
            f"{r.rate:.0f}{ratio(r.rate, b.rate if b else None)}",
            f"{p50:.2f}{ratio(p50, b.percentile(0.5) if b else None)}",
            f"{p99:.2f}{ratio(p99, b.percentile(0.99) if b else None)}",
            f"{cpu:.2f}{ratio(cpu, b.cpu_ms_per_archive if b else None)}" if cpu else "-",
            f"{r.peak_rss / 2**20:.0f}" if r.peak_rss else "-",
        ]
        rows.append(f"| {r.name} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000, help="messages per run")
    parser.add_argument("--rss-messages", type=int, default=20000, help="0 skips the RSS check")
    args = parser.parse_args(argv)

    batch = messages(args.messages)
    bodies = []
    for request in batch:
        where = location(request)
        body = render(request, message_id=where.message_id, sent_at_ms=samples.CREATED_AT_MS)
        bodies.append((where.key, compress(body)))

    with tempfile.TemporaryDirectory() as workdir:
        seaweed = SeaweedFS(Path(workdir))
        seaweed.start()
        try:
            s3 = seaweed.client()
            results = [
                run_baseline(BASE_1, s3, seaweed.new_bucket(), bodies, 1),
                run_baseline(BASE_N, s3, seaweed.new_bucket(), bodies, CONCURRENCY),
            ]
            for name, base, flags, concurrency in PLANS:
                bucket = seaweed.new_bucket()
                sidecar = s3_sidecar(bucket, seaweed.endpoint, seaweed.env, *flags)
                try:
                    if concurrency > 0:
                        result = run_unary(name, base, sidecar, batch, concurrency)
                    else:
                        result = run_stream(name, base, sidecar, batch, -concurrency)
                finally:
                    sidecar.kill()
                # The warm-up message is stored too, under a key of its own.
                result.missing = len(batch) + 1 - len(keys_in(s3, bucket))
                results.append(result)
            growth = rss_growth(seaweed, args.rss_messages) if args.rss_messages else None
        finally:
            seaweed.stop()

    print(f"\n{args.messages} messages per run, SeaweedFS on this machine\n")
    print(table(results))
    by_name = {r.name: r for r in results}
    base1, unary1 = by_name[BASE_1], by_name["Archive, concurrency 1"]
    print(
        f"\nArchive adds {unary1.percentile(0.5) - base1.percentile(0.5):+.2f} ms p50 and "
        f"{unary1.percentile(0.99) - base1.percentile(0.99):+.2f} ms p99 over a direct put "
        "at concurrency 1 (target: at most +1 ms and +5 ms)."
    )
    best_stream = max(r.rate for r in results if r.name.startswith("ArchiveStream"))
    print(
        f"ArchiveStream reaches {best_stream / by_name[BASE_N].rate:.2f}x the "
        f"{CONCURRENCY}-thread direct throughput (target: at least 0.9x)."
    )
    if growth:
        early, late = growth
        print(
            f"Sidecar RSS after {args.rss_messages // 10} archives {early / 2**20:.1f} MiB, "
            f"after {args.rss_messages}: {late / 2**20:.1f} MiB "
            f"({late / early:.2f}x; target at most 1.10x)."
        )
    lost = sum(r.failures + r.missing for r in results)
    if lost:
        print(f"\nFAILED: {lost} messages failed or are missing from the store", file=sys.stderr)
        return 1
    print("\nEvery message of every run was acknowledged and is in the store.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
