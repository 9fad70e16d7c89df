"""Idle streams cannot take service away: 500 of them, with a bogus key or none,
leave health, unary archives and reads served."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from msgarchive import ArchiveClient
from msgarchive.v1 import archive_service_pb2 as pb
from msgarchive.v1 import archive_service_pb2_grpc as pb_grpc
from tests import samples
from tests.sidecar import SidecarProcess, health

pytestmark = pytest.mark.e2e

STREAMS = 500
WAIT = 60.0  # generous: only a stalled sidecar takes this long


def idle(hold: threading.Event) -> Iterator[pb.ArchiveStreamRequest]:
    hold.wait()
    return
    yield  # a generator that sends nothing until `hold` is set


def open_idle_streams(
    address: str, hold: threading.Event, metadata: tuple[tuple[str, str], ...] = ()
) -> tuple[grpc.Channel, list[grpc.Future[Any]]]:
    channel = grpc.insecure_channel(address)
    stub = pb_grpc.ArchiveServiceStub(channel)
    calls = [stub.ArchiveStream(idle(hold), metadata=metadata) for _ in range(STREAMS)]
    return channel, calls  # type: ignore[return-value]


def wait_for_ended(calls: list[grpc.Future[Any]], count: int) -> list[grpc.Future[Any]]:
    """Wait until at least `count` of the streams have ended; those that did."""
    deadline = time.monotonic() + WAIT
    while len(ended := [call for call in calls if call.done()]) < count:
        assert time.monotonic() < deadline, f"only {len(ended)} streams ended"
        time.sleep(0.05)
    return ended


def served(address: str, n: int) -> None:
    """Health says SERVING, and an archive and a read are answered, within deadlines."""
    assert health(address) == "SERVING"
    with ArchiveClient(address, timeout=10) as client:
        ack = client.archive(samples.sms_request(created_at_ms=samples.CREATED_AT_MS + n))
        got = client.get_archived_message(pb.GetArchivedMessageRequest(key=ack.key), timeout=10)
    assert got.file_info.key == ack.key


@pytest.fixture
def sidecar(tmp_path: Path) -> Iterator[SidecarProcess]:
    running = SidecarProcess(["--listen=127.0.0.1:0", f"--store={tmp_path / 'archive'}"]).start()
    try:
        yield running
    finally:
        running.stop()


def test_streams_with_a_bogus_key_are_refused_at_their_start(sidecar: SidecarProcess) -> None:
    hold = threading.Event()
    channel, calls = open_idle_streams(
        sidecar.address, hold, metadata=(("authorization", "Bearer bogus"),)
    )
    try:
        ended = wait_for_ended(calls, STREAMS)  # each at once, none holding a thread
        codes = {call.code() for call in ended}  # type: ignore[attr-defined]
        assert codes == {grpc.StatusCode.UNAUTHENTICATED}
        served(sidecar.address, 1)
    finally:
        hold.set()
        channel.close()


def test_500_idle_streams_leave_health_archives_and_reads_served(
    sidecar: SidecarProcess,
) -> None:
    hold = threading.Event()
    channel, calls = open_idle_streams(sidecar.address, hold)
    try:
        ended = wait_for_ended(calls, STREAMS - 8)  # --max-streams (8) stay open
        assert {call.code() for call in ended} == {grpc.StatusCode.RESOURCE_EXHAUSTED}  # type: ignore[attr-defined]
        assert "streams are open" in ended[0].details()  # type: ignore[attr-defined]
        served(sidecar.address, 2)
        assert len([call for call in calls if not call.done()]) == 8
    finally:
        hold.set()
        channel.close()
    served(sidecar.address, 3)  # and the places come back when the streams end


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_a_stream_whose_answers_are_never_read_cannot_grow_the_sidecar(
    sidecar: SidecarProcess,
) -> None:
    """300,000 two-byte messages (no request_id: each is refused) on one stream
    whose caller never reads its answers: the sidecar's memory stays bounded.
    (It grew by 361 MiB here before every answer took a window place; grpcio's
    client keeps taking answers into its own buffers, so this sender is not
    held back, but the sidecar holds no more than the window.)"""
    assert sidecar.process is not None
    before = rss_mib(sidecar.process.pid)
    pulled = [0]
    stop = threading.Event()

    def messages() -> Iterator[bytes]:
        while pulled[0] < 300_000 and not stop.is_set():
            pulled[0] += 1
            yield b"\x0a\x00"  # an ArchiveStreamRequest with an empty archive

    channel = grpc.insecure_channel(sidecar.address)
    call = channel.stream_stream(
        "/msgarchive.v1.ArchiveService/ArchiveStream",
        request_serializer=lambda raw: raw,
        response_deserializer=lambda raw: raw,
    )(messages())
    try:
        # Until all are sent, or the sender is held back (none taken for 5 s).
        deadline, last, still_since = time.monotonic() + 300, -1, time.monotonic()
        while pulled[0] < 300_000 and time.monotonic() - still_since < 5:
            assert time.monotonic() < deadline, "neither sent nor held back"
            if pulled[0] != last:
                last, still_since = pulled[0], time.monotonic()
            time.sleep(0.1)
        grown = rss_mib(sidecar.process.pid) - before
    finally:
        stop.set()
        call.cancel()
        channel.close()
    print(f"\nunread stream: {pulled[0]} messages taken, sidecar grew {grown:.1f} MiB")
    assert grown < 64
    served(sidecar.address, 4)
