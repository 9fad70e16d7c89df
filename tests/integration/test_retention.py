"""Retention with S3 Object Lock, against SeaweedFS: what the store verifies, and
what the bucket then refuses."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Literal

import pytest
from botocore.exceptions import ClientError

from msgarchive_server.stores import ErrorKind, Retention, StoreError
from msgarchive_server.stores import s3 as s3_store
from tests.seaweed import SeaweedFS

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.integration

KEY = "sent_messages/Sms/202409/1/abc/def.json.lz4"
DAY_MS = 24 * 3600 * 1000
GOVERNANCE_1 = Retention("GOVERNANCE", 1)


def test_a_bucket_whose_default_retention_covers_it_locks_every_copy(
    seaweed: SeaweedFS, s3: S3Client
) -> None:
    bucket = seaweed.new_bucket(object_lock=True)
    seaweed.set_default_retention(bucket, "GOVERNANCE", days=2)
    store = seaweed.store(bucket, retention=GOVERNANCE_1)
    store.probe()
    assert store.retention == Retention("GOVERNANCE", 2)  # what the bucket gives
    before = time.time() * 1000
    written = store.put(KEY, b"a copy")
    head = s3.head_object(Bucket=bucket, Key=KEY)
    assert head["ObjectLockMode"] == "GOVERNANCE"
    until = head["ObjectLockRetainUntilDate"].timestamp() * 1000
    assert before + 2 * DAY_MS - 5000 <= until <= time.time() * 1000 + 2 * DAY_MS + 5000
    assert written.version_id == head["VersionId"]
    got = store.get(KEY)
    assert (got.retention_mode, got.retain_until_ms, got.legal_hold) == (
        "GOVERNANCE",
        int(until),
        False,
    )


def test_a_locked_version_cannot_be_deleted_without_bypassing_governance(
    seaweed: SeaweedFS, s3: S3Client
) -> None:
    bucket = seaweed.new_bucket(object_lock=True)
    seaweed.set_default_retention(bucket, "GOVERNANCE")
    seaweed.store(bucket, retention=GOVERNANCE_1).put(KEY, b"a copy")
    version = s3.head_object(Bucket=bucket, Key=KEY)["VersionId"]
    with pytest.raises(ClientError) as refused:
        s3.delete_object(Bucket=bucket, Key=KEY, VersionId=version)
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    assert s3.head_object(Bucket=bucket, Key=KEY, VersionId=version)["VersionId"] == version
    # Governance lets a user with the permission through, with the header only.
    s3.delete_object(Bucket=bucket, Key=KEY, VersionId=version, BypassGovernanceRetention=True)
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key=KEY, VersionId=version)


def test_a_legal_hold_shows_on_reads(seaweed: SeaweedFS, s3: S3Client) -> None:
    bucket = seaweed.new_bucket(object_lock=True)
    seaweed.set_default_retention(bucket, "GOVERNANCE")
    store = seaweed.store(bucket, retention=GOVERNANCE_1)
    first = store.put(KEY, b"a copy").version_id
    s3.put_object_legal_hold(Bucket=bucket, Key=KEY, LegalHold={"Status": "ON"})
    assert store.get(KEY).legal_hold
    s3.put_object_legal_hold(Bucket=bucket, Key=KEY, LegalHold={"Status": "OFF"})
    assert not store.get(KEY).legal_hold
    # The store's own hold, on one version under a newer one.
    s3.put_object(Bucket=bucket, Key=KEY, Body=b"a later version")
    store.set_legal_hold(KEY, first, on=True)
    assert store.get_version(KEY, first).legal_hold
    assert not store.get(KEY).legal_hold
    store.set_legal_hold(KEY, first, on=False)
    assert not store.get_version(KEY, first).legal_hold


@pytest.mark.parametrize(
    ("object_lock", "default", "wanted", "says"),
    [
        (False, None, GOVERNANCE_1, "Object Lock is not enabled"),
        (True, None, GOVERNANCE_1, "no default retention"),
        (True, ("GOVERNANCE", 1), Retention("COMPLIANCE", 1), "GOVERNANCE for 1 days"),
        (True, ("GOVERNANCE", 1), Retention("GOVERNANCE", 30), "GOVERNANCE for 1 days"),
    ],
)
def test_a_bucket_that_does_not_enforce_the_retention_is_refused(
    seaweed: SeaweedFS,
    object_lock: bool,
    default: tuple[Literal["GOVERNANCE", "COMPLIANCE"], int] | None,
    wanted: Retention,
    says: str,
) -> None:
    bucket = seaweed.new_bucket(object_lock=object_lock)
    if default:
        seaweed.set_default_retention(bucket, *default)
    store = seaweed.store(bucket, retention=wanted)
    with pytest.raises(StoreError) as raised:
        store.probe()
    assert (raised.value.code, raised.value.kind) == ("RetentionNotEnforced", ErrorKind.FATAL)
    assert says in str(raised.value)
    assert store.retention is None


def test_a_default_retention_removed_while_serving_stops_the_writes(
    seaweed: SeaweedFS, s3: S3Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = seaweed.new_bucket(object_lock=True)
    seaweed.set_default_retention(bucket, "GOVERNANCE")
    store = seaweed.store(bucket, retention=GOVERNANCE_1)
    store.probe()
    seaweed.set_default_retention(bucket, None)  # the bucket's owner drops it
    monkeypatch.setattr(s3_store, "RETENTION_RECHECK_S", 0.0)  # the next write rechecks
    with pytest.raises(StoreError) as raised:
        store.put(KEY, b"a copy")
    assert (raised.value.code, raised.value.kind) == ("RetentionNotEnforced", ErrorKind.FATAL)
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="sent_messages/")
