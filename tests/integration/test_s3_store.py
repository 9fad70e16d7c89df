"""The S3 store against a real S3 server (SeaweedFS) over HTTP, with faults between."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Generator, Iterator
from typing import TYPE_CHECKING, cast

import pytest

from msgarchive_server.stores import ErrorKind, NoSuchObject, Retention, StoreError, VersionSummary
from msgarchive_server.stores.s3 import S3Store
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


def _every_request(store: S3Store) -> dict[str, Callable[[], object]]:
    """One call of each kind the store makes, by name."""
    return {
        "list": lambda: store.list("sent_messages/"),
        "versions": lambda: list(store.versions("sent_messages/")),
        "get": lambda: store.get(KEY),
        "get_version": lambda: store.get_version(KEY, "3" * 32),
        "read": lambda: store.read(KEY),
        "set_legal_hold": lambda: store.set_legal_hold(KEY, "", on=True),
        "probe": lambda: store.probe(),
        "put": lambda: store.put(KEY, BODY),
        "put_head_first": lambda: _without_conditional_writes(store).put(KEY, BODY),
    }


def _without_conditional_writes(store: S3Store) -> S3Store:
    """`store` as it runs on a store that ignores If-None-Match: read, then write."""
    store.conditional_writes = False
    return store


REQUESTS = list(_every_request(cast("S3Store", None)))  # the names only


@pytest.mark.parametrize("request_name", REQUESTS)
def test_each_request_to_an_unreachable_store_is_a_transient_store_error(
    seaweed: SeaweedFS, request_name: str
) -> None:
    """Refused connections come out of boto3 and obstore alike as a StoreError
    the pipeline retries, never as a library's own exception."""
    store = seaweed.store("any-bucket", endpoint="http://127.0.0.1:9")  # discard: nobody listens
    with pytest.raises(StoreError) as raised:
        _every_request(store)[request_name]()
    assert raised.value.kind is ErrorKind.TRANSIENT


@pytest.mark.parametrize("request_name", REQUESTS)
def test_each_request_to_a_missing_bucket_names_the_bucket_missing(
    seaweed: SeaweedFS, request_name: str
) -> None:
    store = seaweed.store(f"no-such-bucket-{request_name.replace('_', '-')}")
    with pytest.raises(StoreError) as raised:
        _every_request(store)[request_name]()
    assert (raised.value.code, raised.value.kind) == ("NoSuchBucket", ErrorKind.FATAL)


def test_a_store_whose_retention_cannot_be_checked_is_a_transient_store_error(
    seaweed: SeaweedFS,
) -> None:
    store = seaweed.store(
        "any-bucket", endpoint="http://127.0.0.1:9", retention=Retention("GOVERNANCE", 1)
    )
    with pytest.raises(StoreError) as raised:
        store.put(KEY, BODY)  # the first write checks the bucket's retention first
    assert (raised.value.code, raised.value.kind) == (
        "EndpointConnectionError",
        ErrorKind.TRANSIENT,
    )


def test_versions_lists_every_version_and_delete_marker_newest_first_within_a_key(
    seaweed: SeaweedFS, bucket: str, s3: S3Client
) -> None:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    store = seaweed.store(bucket)
    first = store.put(KEY, BODY).version_id
    second = s3.put_object(Bucket=bucket, Key=KEY, Body=b"a later version")["VersionId"]
    marker = s3.delete_object(Bucket=bucket, Key=KEY)["VersionId"]
    other = KEY.replace("def.json.lz4", "xyz.json.lz4")
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    s3.put_object(Bucket=bucket, Key=other, Body=BODY)  # version "null": written unversioned
    listed = [
        (v.key, v.version_id, v.is_latest, v.is_delete_marker, v.size)
        for v in store.versions("sent_messages/")
    ]
    assert listed == [
        (KEY, marker, True, True, 0),
        (KEY, second, False, False, len(b"a later version")),
        (KEY, first, False, False, len(BODY)),
        (other, "", True, False, len(BODY)),
    ]
    # Page by page, the same: a page may end between two versions of a key.
    assert [
        (v.key, v.version_id, v.is_latest, v.is_delete_marker, v.size)
        for v in store.versions("sent_messages/", page_size=1)
    ] == listed
    assert store.get_version(KEY, first).body == BODY
    assert store.get_version(KEY, second).body == b"a later version"
    with pytest.raises(NoSuchObject):
        store.get(KEY)  # the latest is a delete marker


def test_a_probe_of_a_store_that_refuses_conditional_writes_falls_back_once_and_keeps_write_once(
    seaweed: SeaweedFS, bucket: str, proxy: FaultProxy, s3: S3Client
) -> None:
    """A store that answers 501 to If-None-Match: the probe says so, and each
    write then reads the key first, so an existing copy is acknowledged as it
    is and never replaced."""
    proxy.refuse_conditional = True
    store = seaweed.store(bucket, endpoint=proxy.endpoint)
    store.probe()
    assert not store.conditional_writes
    store.probe()  # the probe's own object exists now: still no conditional write trusted
    assert not store.conditional_writes
    assert store.put(KEY, BODY).etag == MD5
    writes = proxy.writes
    again = store.put(KEY, b"a different body for the same key")
    assert (again.already_existed, again.existing_copy) == (True, BODY)
    assert proxy.writes == writes  # read back, not written
    assert s3.get_object(Bucket=bucket, Key=KEY)["Body"].read() == BODY


def test_a_write_answered_501_to_if_none_match_is_retried_without_it(
    seaweed: SeaweedFS, bucket: str, proxy: FaultProxy, s3: S3Client
) -> None:
    store = seaweed.store(bucket, endpoint=proxy.endpoint)
    store.probe()
    assert store.conditional_writes
    proxy.refuse_conditional = True  # the store changed under the sidecar
    with pytest.raises(StoreError) as raised:
        store.put(KEY, BODY)
    assert (raised.value.code, raised.value.kind) == ("NotImplemented", ErrorKind.TRANSIENT)
    assert not store.conditional_writes
    assert store.put(KEY, BODY).etag == MD5  # the pipeline's retry
    assert s3.get_object(Bucket=bucket, Key=KEY)["Body"].read() == BODY


def test_a_probe_whose_conditional_write_fails_otherwise_is_an_error_not_a_fallback(
    seaweed: SeaweedFS, bucket: str, proxy: FaultProxy
) -> None:
    store = seaweed.store(bucket, endpoint=proxy.endpoint)
    proxy.queue(None)  # the probe's plain write
    proxy.queue(Fault.ERROR_500)  # and its conditional one
    with pytest.raises(StoreError) as raised:
        store.probe()
    assert raised.value.code == "InternalError"
    assert store.conditional_writes


def test_a_listing_pages_after_the_key_it_is_given(
    seaweed: SeaweedFS, bucket: str, s3: S3Client
) -> None:
    store = seaweed.store(bucket)
    other = KEY.replace("def.json.lz4", "xyz.json.lz4")
    for key in (KEY, other):
        store.put(key, BODY)
    first = store.list("sent_messages/", limit=1)
    assert ([i.key for i in first.items], first.truncated) == ([KEY], True)
    assert first.items[0].size == len(BODY)
    assert first.items[0].etag == MD5
    second = store.list("sent_messages/", start_after=KEY, limit=1)
    assert ([i.key for i in second.items], second.truncated) == ([other], False)


def test_versions_gives_keys_as_stored_whatever_their_characters(
    seaweed: SeaweedFS, bucket: str, s3: S3Client
) -> None:
    keys = ["odd/a b+c%41.txt", "odd/plain", "odd/\u00e9t\u00e9"]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=BODY)
    assert [v.key for v in seaweed.store(bucket).versions("odd/", page_size=2)] == sorted(keys)


def test_versions_listed_a_folder_a_thread_are_the_same_and_stop_with_the_caller(
    seaweed: SeaweedFS, bucket: str, s3: S3Client
) -> None:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    keys = [f"sent_messages/{folder}/k{n}" for folder in ("Email", "Push", "Sms") for n in range(5)]
    keys += ["sent_messages/loose-object", "sent_messages/Zeta/only"]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=BODY)
    s3.put_object(Bucket=bucket, Key=keys[0], Body=b"a second version")
    s3.delete_object(Bucket=bucket, Key=keys[6])
    store = seaweed.store(bucket)

    def listed(parallel: int) -> list[tuple[str, str, bool, bool]]:
        found = store.versions("sent_messages/", page_size=2, parallel=parallel)
        return sorted((v.key, v.version_id, v.is_latest, v.is_delete_marker) for v in found)

    one = listed(1)
    assert len(one) == len(keys) + 2  # a second version, a delete marker
    assert listed(4) == one
    assert listed(2) == one  # fewer threads than folders
    in_order = [v.key for v in store.versions("sent_messages/", page_size=2, parallel=4)]
    assert in_order == sorted(in_order)
    # A caller that stops early: the listing threads stop too (this returns).
    started = store.versions("sent_messages/", page_size=1, parallel=4)
    assert isinstance(started, Generator)
    assert [next(started).key for _ in range(3)]
    started.close()


def test_versions_listed_a_folder_a_thread_put_loose_objects_in_their_places(
    seaweed: SeaweedFS, bucket: str, s3: S3Client
) -> None:
    """Objects directly below the prefix come where the listing of the whole
    prefix puts them among the folders' keys. (Names that sort beside a
    folder's, "Email-loose" beside "Email/", are left out: SeaweedFS lists a
    folder's keys before them, where S3 lists them after, and loses them when
    a page of 2 ends there.)"""
    keys = [f"sent_messages/{folder}/k{n}" for folder in ("Email", "Sms") for n in range(3)]
    keys += ["sent_messages/A-loose", "sent_messages/Fax", "sent_messages/zz-last"]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=BODY)
    store = seaweed.store(bucket)
    for parallel in (1, 2, 4):
        assert [v.key for v in store.versions("sent_messages/", parallel=parallel)] == sorted(keys)


def test_a_bucket_never_versioned_is_listed_by_its_objects_to_the_same_versions(
    seaweed: SeaweedFS, bucket: str, s3: S3Client
) -> None:
    """ListObjectsV2 costs the store less than its version listing; on a
    bucket that never had versioning on, both give the same versions."""
    keys = [f"sent_messages/{folder}/k {n}+%" for folder in ("Email", "Sms") for n in range(5)]
    keys += ["sent_messages/loose-object", "sent_messages/\u00e9t\u00e9/only"]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=BODY)
    store = seaweed.store(bucket)
    assert store._never_versioned()

    def summary(found: Iterator[VersionSummary]) -> list[tuple[object, ...]]:
        return [
            (v.key, v.version_id, v.etag, v.size, v.is_latest, v.is_delete_marker) for v in found
        ]

    pages = store._pages_of(store._versions_page, "sent_messages/", 1000)
    by_versions = summary(v for found, _ in pages for v in found)
    assert [v[0] for v in by_versions] == sorted(keys)
    assert {v[1:] for v in by_versions} == {("", MD5, len(BODY), True, False)}
    pages = store._pages_of(store._objects_page, "sent_messages/", 3)
    assert summary(v for found, _ in pages for v in found) == by_versions
    assert summary(store.versions("sent_messages/", page_size=3)) == by_versions
    listed_apart = summary(store.versions("sent_messages/", page_size=2, parallel=4))
    assert sorted(listed_apart) == by_versions
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    assert not store._never_versioned()  # once on, old versions may be there: listed as such
