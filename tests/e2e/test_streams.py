"""ArchiveStream through the real sidecar: pipelined, matched by request_id,
concurrent up to the window, one message's failure leaving the stream open."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import grpc
import pytest

from msgarchive import (
    ArchiveClient,
    ArchiveFailed,
    AsyncArchiveClient,
    InvalidMessage,
    StreamResult,
)
from msgarchive.v1 import archive_service_pb2 as pb
from msgarchive_server.domain.payloads import decompress
from tests import samples
from tests.faults import Fault, FaultProxy
from tests.seaweed import SeaweedFS, keys_in
from tests.sidecar import SidecarProcess, s3_sidecar

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.e2e


@pytest.fixture
def sidecar(seaweed: SeaweedFS, bucket: str, proxy: FaultProxy) -> Iterator[SidecarProcess]:
    process = s3_sidecar(bucket, proxy.endpoint, seaweed.env, "--stream-window=4")
    try:
        yield process
    finally:
        process.kill()


def messages(count: int) -> list[pb.ArchiveRequest]:
    makers = list(samples.REQUESTS.values())
    out = []
    for n in range(count):
        request = makers[n % 4](created_at_ms=samples.CREATED_AT_MS + n)
        request.request_id = f"m-{n}"
        out.append(request)
    return out


def test_every_message_is_answered_by_request_id_and_stored(
    sidecar: SidecarProcess, bucket: str, s3: S3Client
) -> None:
    sent = messages(40)
    with ArchiveClient(sidecar.address) as client:
        results = list(client.archive_many(sent))
    assert sorted(r.request_id for r in results) == sorted(m.request_id for m in sent)
    assert all(r.archived for r in results)
    by_id = {r.request_id: r.ack for r in results}
    for message in sent:
        ack = by_id[message.request_id]
        assert ack is not None
        assert ack.request_id == message.request_id
        copy = json.loads(decompress(s3.get_object(Bucket=bucket, Key=ack.key)["Body"].read()))
        assert copy["message_id"] == ack.message_id
    assert len(keys_in(s3, bucket)) == 40


def test_archives_run_concurrently_up_to_the_window(
    sidecar: SidecarProcess, proxy: FaultProxy
) -> None:
    proxy.set_rates({Fault.HOLD: 1.0})  # every write waits in the store until released
    results: list[StreamResult] = []
    with ArchiveClient(sidecar.address) as client:
        consumer = threading.Thread(
            target=lambda: results.extend(client.archive_many(messages(24))), daemon=True
        )
        consumer.start()
        assert proxy.wait_for_write(count=4), "the window's 4 never ran at once"
        # A 5th may not join them. (A slow machine can only hide a broken window
        # here, never fail a sound one.)
        assert not proxy.wait_for_write(count=5, timeout=2.0)
        proxy.release.set()
        consumer.join(60)
    assert len(results) == 24
    assert all(r.archived for r in results)
    assert proxy.max_concurrent_writes == 4  # the window of 4 ran at once, never more


def test_answers_come_as_they_complete(sidecar: SidecarProcess, proxy: FaultProxy) -> None:
    proxy.queue(Fault.HOLD)  # the first write the store sees waits until released
    sent = messages(6)

    def first_alone() -> Iterator[pb.ArchiveRequest]:
        # Messages run concurrently: m-0 goes alone, so that its write is the first.
        yield sent[0]
        assert proxy.wait_for_write(), "m-0's write never reached the store"
        yield from sent[1:]

    order: list[str] = []
    with ArchiveClient(sidecar.address) as client:
        for result in client.archive_many(first_alone()):
            order.append(result.request_id)
            if len(order) == 5:  # the five after m-0 are answered: let m-0's write end
                proxy.release.set()
    assert order[-1] == "m-0"
    assert sorted(order) == [f"m-{n}" for n in range(6)]


def test_one_failure_does_not_end_the_stream(sidecar: SidecarProcess, proxy: FaultProxy) -> None:
    sent = messages(9)
    sent[3].sms.to = "12"  # invalid
    sent[5].request_id = sent[4].request_id = "twin"  # one of the twins may be in flight
    proxy.queue(Fault.ERROR_500, 4)  # every attempt of the first message fails

    def paced() -> Iterator[pb.ArchiveRequest]:
        yield sent[0]  # alone, so that all four faults hit it
        deadline = time.monotonic() + 60
        while proxy.applied[Fault.ERROR_500] < 4:
            assert time.monotonic() < deadline, "the first message's attempts never all failed"
            time.sleep(0.02)
        yield from sent[1:]

    with ArchiveClient(sidecar.address) as client:
        results = list(client.archive_many(paced()))
    assert len(results) == 9
    errors = [r.error for r in results if r.error is not None]
    (first,) = [r for r in results if r.request_id == "m-0"]
    assert isinstance(first.error, ArchiveFailed)
    assert (first.error.reason, first.error.attempts) == ("FAILED_TO_ARCHIVE", 4)
    invalid = [e for e in errors if isinstance(e, InvalidMessage)]
    assert ("sms.to", "must be a phone number with country code: 8 to 15 digits") in [
        v for e in invalid for v in e.field_violations
    ]
    assert sum(r.archived for r in results) >= 9 - 3


def test_a_missing_request_id_is_that_messages_error(sidecar: SidecarProcess) -> None:
    with grpc.insecure_channel(sidecar.address) as channel:
        from msgarchive.v1 import archive_service_pb2_grpc as pb_grpc

        stub = pb_grpc.ArchiveServiceStub(channel)
        unnamed = samples.sms_request()
        named = samples.email_request(request_id="e-1")
        answers = list(
            stub.ArchiveStream(
                iter(
                    [
                        pb.ArchiveStreamRequest(archive=unnamed),
                        pb.ArchiveStreamRequest(archive=named),
                    ]
                ),
                timeout=30,
            )
        )
    by_id = {a.request_id: a for a in answers}
    assert by_id[""].error.code == "INVALID_ARGUMENT"
    assert by_id[""].error.field_violations[0].field == "archive.request_id"
    assert by_id["e-1"].HasField("ack")


def test_async_archive_many(sidecar: SidecarProcess) -> None:
    async def run() -> list[str]:
        async with AsyncArchiveClient(sidecar.address) as client:
            return [r.request_id async for r in client.archive_many(messages(12)) if r.archived]

    assert sorted(asyncio.run(run())) == sorted(f"m-{n}" for n in range(12))
