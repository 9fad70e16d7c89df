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
