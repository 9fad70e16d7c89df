"""kill -9 under load: every copy acked before the kill is stored; the rest
were errors, never acks; a restarted sidecar serves again."""

from __future__ import annotations

import signal
import threading
from typing import TYPE_CHECKING

import grpc
import pytest

from msgarchive import ArchiveClient, MsgArchiveError
from msgarchive.v1 import archive_service_pb2 as pb
from msgarchive_server.domain.payloads import decompress
from tests import samples
from tests.faults import Fault, FaultProxy
from tests.seaweed import SeaweedFS
from tests.sidecar import s3_sidecar

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.e2e

WORKERS = 8
ACKED_BEFORE_KILL = 200
WAIT = 120.0  # generous: a busy machine is slow, not stuck


def test_kill_9_under_load_loses_no_acked_copy(
    seaweed: SeaweedFS, bucket: str, s3: S3Client, proxy: FaultProxy
) -> None:
    # Some writes are slowed, so calls are in flight when the sidecar dies.
    proxy.delay = 0.3
    proxy.set_rates({Fault.DELAY: 0.2})
    sidecar = s3_sidecar(bucket, proxy.endpoint, seaweed.env)
    acked: list[pb.ArchiveResponse] = []
    errors: list[tuple[pb.ArchiveRequest, MsgArchiveError]] = []
    stop = threading.Event()
    enough = threading.Event()  # ACKED_BEFORE_KILL acks are in
    counter = iter(range(1_000_000))
    lock = threading.Lock()

    def load(client: ArchiveClient) -> None:
        # Archive until the first error: after the kill, every call fails.
        while not stop.is_set():
            with lock:
                n = next(counter)
            request = samples.sms_request(created_at_ms=samples.CREATED_AT_MS + n)
            try:
                ack = client.archive(request, timeout=30)
            except MsgArchiveError as err:
                errors.append((request, err))
                return
            acked.append(ack)
            if len(acked) >= ACKED_BEFORE_KILL:
                enough.set()

    client = ArchiveClient(sidecar.address, options=[("grpc.enable_retries", 0)])
    threads = [threading.Thread(target=load, args=(client,)) for _ in range(WORKERS)]
    try:
        for thread in threads:
            thread.start()
        assert enough.wait(WAIT), f"only {len(acked)} acks, errors: {errors[:1]}"
        assert sidecar.stop(signal.SIGKILL) == -signal.SIGKILL
        acked_before_kill = len(acked)
        for thread in threads:
            thread.join(WAIT)  # each worker ends at its first error
            assert not thread.is_alive()
    finally:
        stop.set()
        client.close()
    acked_after_kill = len(acked) - acked_before_kill
    print(f"\nkill -9: {len(acked)} acked, {len(errors)} errors, {acked_after_kill} acks after")

    assert acked_after_kill <= WORKERS  # only replies already on the wire
    assert len(errors) == WORKERS, "every worker's call after the kill failed"
    assert {err.code for _, err in errors} <= {grpc.StatusCode.UNAVAILABLE}
    for ack in acked:
        copy = decompress(s3.get_object(Bucket=bucket, Key=ack.key)["Body"].read())
        assert f'"message_id":"{ack.message_id}"'.encode() in copy

    restarted = s3_sidecar(bucket, proxy.endpoint, seaweed.env)
    try:
        with ArchiveClient(restarted.address) as again:
            retried = [again.archive(request) for request, _ in errors]
    finally:
        assert restarted.stop() == 0
    assert all(ack.key for ack in retried)
