"""The S3 store against a real S3 server (SeaweedFS) over HTTP, with faults between."""

from __future__ import annotations

import base64
import hashlib
from typing import TYPE_CHECKING

import pytest

from msgarchive_server.stores import ErrorKind, NoSuchObject, StoreError
from tests.faults import Fault, FaultProxy
from tests.seaweed import SeaweedFS, keys_in

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.integration

BODY = b"\x04\x22\x4d\x18 a stand-in for an LZ4 frame"
MD5 = hashlib.md5(BODY, usedforsecurity=False).hexdigest()
KEY = "sent_messages/Sms/202409/1/abc/def.json.lz4"


def test_put_stores_the_exact_bytes_with_a_checksum_the_store_kept(
    seaweed: SeaweedFS, bucket: str, s3: S3Client
) -> None:
    result = seaweed.store(bucket).put(KEY, BODY)
    assert not result.already_existed
    assert result.etag == MD5
    got = s3.get_object(Bucket=bucket, Key=KEY, ChecksumMode="ENABLED")
    assert got["Body"].read() == BODY
    assert got["ContentType"] == "application/x-lz4"
    assert got["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(BODY).digest()).decode()


def test_a_key_is_written_once(seaweed: SeaweedFS, bucket: str, s3: S3Client) -> None:
    store = seaweed.store(bucket)
    store.put(KEY, BODY)
    result = store.put(KEY, b"a different body for the same key")
    assert result.already_existed
    assert result.existing_copy == BODY
    assert result.etag == MD5
    assert s3.get_object(Bucket=bucket, Key=KEY)["Body"].read() == BODY


def test_a_versioned_bucket_reports_the_version_written(
    seaweed: SeaweedFS, bucket: str, s3: S3Client
) -> None:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    result = seaweed.store(bucket).put(KEY, BODY)
    assert result.version_id
    assert result.version_id == s3.head_object(Bucket=bucket, Key=KEY)["VersionId"]


def test_read_gives_each_versions_bytes_and_no_such_object_for_what_is_not_there(
    seaweed: SeaweedFS, bucket: str, s3: S3Client
) -> None:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    store = seaweed.store(bucket)
    first = store.put(KEY, BODY).version_id
    second = s3.put_object(Bucket=bucket, Key=KEY, Body=b"a later version")["VersionId"]
    assert store.read(KEY, first) == BODY
    assert store.read(KEY, second) == store.read(KEY) == b"a later version"
    with pytest.raises(NoSuchObject):
        store.read(KEY + ".missing")
    with pytest.raises(NoSuchObject):
        store.read(KEY, "0" * 32)  # a version the key never had


def test_a_read_the_store_refuses_is_a_store_error(seaweed: SeaweedFS, bucket: str) -> None:
    seaweed.store(bucket).put(KEY, BODY)
    proxy = FaultProxy(int(seaweed.endpoint.rsplit(":", 1)[1])).start()
    try:
        proxy.fault_reads(after=0, fault=Fault.ERROR_500)
        with pytest.raises(StoreError) as raised:
            seaweed.store(bucket, endpoint=proxy.endpoint).read(KEY)
        assert raised.value.kind is ErrorKind.TRANSIENT
    finally:
        proxy.stop()


def test_a_body_corrupted_on_the_way_is_refused(
    seaweed: SeaweedFS, bucket: str, s3: S3Client, proxy: FaultProxy
) -> None:
    proxy.queue(Fault.CORRUPT)  # one byte flipped between the sidecar and the store
    with pytest.raises(StoreError) as raised:
        seaweed.store(bucket, endpoint=proxy.endpoint).put(KEY, BODY)
    assert raised.value.code in ("BadDigest", "XAmzContentSHA256Mismatch")
    assert raised.value.kind is ErrorKind.TRANSIENT
    assert keys_in(s3, bucket) == []


@pytest.mark.parametrize(
    ("fault", "code", "kind"),
    [
        (Fault.SLOWDOWN, "SlowDown", ErrorKind.THROTTLED),
        (Fault.ERROR_500, "InternalError", ErrorKind.TRANSIENT),
        (Fault.ACCESS_DENIED, "AccessDenied", ErrorKind.DENIED),
        (Fault.RESET, "ConnectionClosedError", ErrorKind.TRANSIENT),
        (Fault.LOST_RESPONSE, "ConnectionClosedError", ErrorKind.TRANSIENT),
    ],
)
def test_failed_writes_are_classified(
    seaweed: SeaweedFS, bucket: str, proxy: FaultProxy, fault: Fault, code: str, kind: ErrorKind
) -> None:
    proxy.queue(fault)
    with pytest.raises(StoreError) as raised:
        seaweed.store(bucket, endpoint=proxy.endpoint).put(KEY, BODY)
    assert (raised.value.code, raised.value.kind) == (code, kind)


def test_sse_is_sent_and_applied(seaweed: SeaweedFS, bucket: str, s3: S3Client) -> None:
    seaweed.store(bucket, sse="AES256").put(KEY, BODY)
    assert s3.head_object(Bucket=bucket, Key=KEY)["ServerSideEncryption"] == "AES256"


def test_check_finds_a_missing_bucket_fatal(seaweed: SeaweedFS) -> None:
    with pytest.raises(StoreError) as raised:
        seaweed.store("no-such-bucket-here").probe()
    assert raised.value.code == "NoSuchBucket"
    assert raised.value.kind is ErrorKind.FATAL


@pytest.mark.parametrize(
    ("access_key", "secret_key", "code"),
    [
        ("not-a-key", "not-a-secret", "InvalidAccessKeyId"),
        ("msgarchive-test-key", "not-the-secret", "SignatureDoesNotMatch"),
    ],
)
def test_refused_credentials_are_fatal(
    seaweed: SeaweedFS, bucket: str, access_key: str, secret_key: str, code: str
) -> None:
    store = seaweed.store(bucket, access_key=access_key, secret_key=secret_key)
    with pytest.raises(StoreError) as raised:
        store.put(KEY, BODY)
    assert (raised.value.code, raised.value.kind) == (code, ErrorKind.FATAL)
    with pytest.raises(StoreError) as probed:
        store.probe()
    assert (probed.value.code, probed.value.kind) == (code, ErrorKind.FATAL)


def test_unreachable_endpoint_is_transient(seaweed: SeaweedFS) -> None:
    store = seaweed.store("any-bucket", endpoint="http://127.0.0.1:9")  # discard: nobody listens
    with pytest.raises(StoreError) as raised:
        store.put(KEY, BODY)
    assert (raised.value.code, raised.value.kind) == (
        "EndpointConnectionError",
        ErrorKind.TRANSIENT,
    )


def test_the_probe_trusts_if_none_match_where_the_store_honours_it(
    seaweed: SeaweedFS, bucket: str
) -> None:
    store = seaweed.store(bucket)
    store.probe()
    assert store.conditional_writes  # one conditional PUT a write, no HEAD before it


def test_a_412_with_no_copy_to_read_back_is_a_retryable_failure_never_an_ack(
    seaweed: SeaweedFS, bucket: str, proxy: FaultProxy, s3: S3Client
) -> None:
    """The store refuses the write as if the key existed, but reading the copy
    back finds none: that is no ack (there is no copy to acknowledge)."""
    store = seaweed.store(bucket, endpoint=proxy.endpoint)
    store.probe()
    assert store.conditional_writes
    proxy.queue(Fault.PRECONDITION_FAILED)
    key = "sent_messages/Sms/202409/c1/" + "b" * 32 + "/" + "a" * 64 + ".json.lz4"
    with pytest.raises(StoreError) as raised:
        store.put(key, b"a copy")
    assert (raised.value.code, raised.value.kind) == ("PreconditionFailed", ErrorKind.TRANSIENT)
    assert key not in keys_in(s3, bucket)
