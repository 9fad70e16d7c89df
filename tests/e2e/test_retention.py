"""Retention end to end: the sidecar archives only into a bucket that locks every
copy as configured, and says so in the ack and in reads."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from msgarchive import ArchiveClient, ArchiveUnavailable
from msgarchive.v1 import archive_service_pb2 as pb
from tests import samples
from tests.seaweed import SeaweedFS, keys_in
from tests.sidecar import health, s3_sidecar, wait_until_serving

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.e2e

DAY_MS = 24 * 3600 * 1000


def test_archiving_waits_for_a_bucket_that_enforces_the_retention(
    seaweed: SeaweedFS, s3: S3Client
) -> None:
    bucket = seaweed.new_bucket(object_lock=True)  # Object Lock, but no default retention
    sidecar = s3_sidecar(
        bucket,
        seaweed.endpoint,
        seaweed.env,
        "--retention-mode=GOVERNANCE",
        "--retention-days=7",
        "--probe-max-interval=1",
    )
    try:
        assert health(sidecar.address) == "NOT_SERVING"
        with ArchiveClient(sidecar.address) as client:
            with pytest.raises(ArchiveUnavailable) as refused:
                client.archive(samples.sms_request())
            assert refused.value.metadata["store_error"] == "RetentionNotEnforced"
            assert keys_in(s3, bucket) == []

            seaweed.set_default_retention(bucket, "GOVERNANCE", days=7)
            wait_until_serving(sidecar.address)
            ack = client.archive(samples.sms_request())
            assert ack.retention.mode == pb.RETENTION_MODE_GOVERNANCE
            assert ack.retention.retain_until_ms == ack.sent_at_ms // 1000 * 1000 + 7 * DAY_MS
            assert not ack.retention.legal_hold

            head = s3.head_object(Bucket=bucket, Key=ack.key)
            store_until = int(head["ObjectLockRetainUntilDate"].timestamp() * 1000)
            # The ack's date is a lower bound of the store's own.
            assert 0 <= store_until - ack.retention.retain_until_ms < 60_000
            s3.put_object_legal_hold(Bucket=bucket, Key=ack.key, LegalHold={"Status": "ON"})
            got = client.get_archived_message(pb.GetArchivedMessageRequest(key=ack.key))
            assert got.file_info.version_id == head["VersionId"]
            assert got.file_info.retention == pb.Retention(
                mode=pb.RETENTION_MODE_GOVERNANCE, retain_until_ms=store_until, legal_hold=True
            )
    finally:
        assert sidecar.stop() == 0
