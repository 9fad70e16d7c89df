"""The S3 store against a real S3 server (SeaweedFS) over HTTP."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import pytest

from msgarchive_server.stores import ErrorKind, StoreError
from msgarchive_server.stores.s3 import S3Options, S3Store
from tests.seaweed import SeaweedFS, keys_in, s3_client

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.integration

BODY = b"\x04\x22\x4d\x18 a stand-in for an LZ4 frame"
MD5 = hashlib.md5(BODY, usedforsecurity=False).digest()
KEY = "sent_messages/Sms/202409/1/abc/def.json.lz4"


def store_for(seaweed: SeaweedFS, bucket: str, **options: object) -> S3Store:
    return S3Store(S3Options(bucket=bucket, **options), client=seaweed.client())  # type: ignore[arg-type]


def test_put_stores_the_exact_bytes(seaweed: SeaweedFS, bucket: str, s3: S3Client) -> None:
    result = store_for(seaweed, bucket).put(KEY, BODY, MD5)
    assert not result.already_existed
    assert result.etag == MD5.hex()
    got = s3.get_object(Bucket=bucket, Key=KEY)
    assert got["Body"].read() == BODY
    assert got["ContentType"] == "application/x-lz4"


def test_a_key_is_written_once(seaweed: SeaweedFS, bucket: str, s3: S3Client) -> None:
    store = store_for(seaweed, bucket)
    store.put(KEY, BODY, MD5)
    other = b"a different body for the same key"
    result = store.put(KEY, other, hashlib.md5(other, usedforsecurity=False).digest())
    assert result.already_existed
    assert result.existing_copy == BODY
    assert result.etag == MD5.hex()
    assert s3.get_object(Bucket=bucket, Key=KEY)["Body"].read() == BODY


def test_the_store_rejects_a_body_that_does_not_match_its_checksum(
    seaweed: SeaweedFS, bucket: str, s3: S3Client
) -> None:
    wrong = hashlib.md5(b"what we meant to send", usedforsecurity=False).digest()
    with pytest.raises(StoreError) as raised:
        store_for(seaweed, bucket).put(KEY, BODY, wrong)
    assert raised.value.code == "BadDigest"
    assert raised.value.kind is ErrorKind.TRANSIENT
    assert keys_in(s3, bucket) == []


def test_sse_is_sent_and_applied(seaweed: SeaweedFS, bucket: str, s3: S3Client) -> None:
    store_for(seaweed, bucket, sse="AES256").put(KEY, BODY, MD5)
    assert s3.head_object(Bucket=bucket, Key=KEY)["ServerSideEncryption"] == "AES256"


def test_check_finds_a_missing_bucket_fatal(seaweed: SeaweedFS) -> None:
    with pytest.raises(StoreError) as raised:
        store_for(seaweed, "no-such-bucket-here").probe()
    assert raised.value.code == "NoSuchBucket"
    assert raised.value.kind is ErrorKind.FATAL


def test_refused_credentials_are_fatal(seaweed: SeaweedFS, bucket: str) -> None:
    client = s3_client(seaweed.endpoint, "not-a-key", "not-a-secret")
    store = S3Store(S3Options(bucket=bucket), client=client)
    with pytest.raises(StoreError) as raised:
        store.put(KEY, BODY, MD5)
    assert raised.value.code in ("InvalidAccessKeyId", "SignatureDoesNotMatch")
    assert raised.value.kind is ErrorKind.FATAL


def test_unreachable_endpoint_is_transient() -> None:
    client = s3_client("http://127.0.0.1:9")  # the discard port: nothing listens
    store = S3Store(S3Options(bucket="any-bucket"), client=client)
    with pytest.raises(StoreError) as raised:
        store.put(KEY, BODY, MD5)
    assert raised.value.kind is ErrorKind.TRANSIENT
    assert raised.value.code == "EndpointConnectionError"
