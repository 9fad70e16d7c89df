"""kill -9 under load: every copy acked before the kill is stored; the rest
were errors, never acks; a restarted sidecar serves again."""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc
import pytest

from msgarchive import ArchiveClient
from msgarchive_server.domain.payloads import decompress
from tests.faults import Fault, FaultProxy
from tests.load import kill_9_under_load
from tests.seaweed import SeaweedFS
from tests.sidecar import s3_sidecar

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.e2e

WORKERS = 8
ACKED_BEFORE_KILL = 200


def test_kill_9_under_load_loses_no_acked_copy(
    seaweed: SeaweedFS, bucket: str, s3: S3Client, proxy: FaultProxy
) -> None:
    # Some writes are slowed, so calls are in flight when the sidecar dies.
    proxy.delay = 0.3
    proxy.set_rates({Fault.DELAY: 0.2})
    sidecar = s3_sidecar(bucket, proxy.endpoint, seaweed.env)
    run = kill_9_under_load(sidecar, threads=WORKERS, acks_before_kill=ACKED_BEFORE_KILL)
    acked, errors, acked_before_kill = run.acked, run.errors, run.acked_before_kill
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
