"""The S3 store (boto3): AWS S3 or any S3-compatible endpoint.

Every write carries `Content-MD5` of the exact bytes, which the store checks
(a mismatch is `BadDigest`), and `If-None-Match: *`, so a key is written once:
a `412` means the copy is already there. botocore's own retries are off, so
the pipeline counts every attempt; botocore errors are translated into
`StoreError` here and never leak further.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
import botocore.config
import botocore.handlers
import structlog
from botocore.exceptions import BotoCoreError, ClientError

from msgarchive_server.stores.base import (
    ErrorKind,
    ListPage,
    NoSuchObject,
    ObjectSummary,
    PutResult,
    StoredObject,
    StoreError,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

CONTENT_TYPE = "application/x-lz4"
# Below the prefix, outside sent_messages/: the object probe() writes.
PROBE_KEY = "_msgarchive/probe"

log = structlog.get_logger("msgarchive.store")

_THROTTLING_CODES = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TooManyRequests",
    "TooManyRequestsException",
}
_FATAL_CODES = {
    "NoSuchBucket",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidBucketName",
    "AccountProblem",
    "AllAccessDisabled",
    "InvalidToken",
    "ExpiredToken",
}
# 4xx answers that retrying can cure.
_TRANSIENT_CLIENT_CODES = {
    "AccessDenied",
    "BadDigest",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "ConditionalRequestConflict",
    "XAmzContentSHA256Mismatch",
    "OperationAborted",
}


@dataclass(frozen=True, slots=True)
class S3Options:
    """How to reach the bucket. Credentials come from the standard AWS chain."""

    bucket: str
    prefix: str = ""
    region: str | None = None
    endpoint_url: str | None = None
    path_style: bool = False
    sse: str | None = None  # "AES256" or "aws:kms"
    sse_kms_key_id: str | None = None
    connect_timeout: float = 2.0
    read_timeout: float = 10.0
    max_connections: int = 32


def make_client(options: S3Options) -> S3Client:
    """A boto3 S3 client with botocore's retries off (the pipeline retries)."""
    config = botocore.config.Config(
        region_name=options.region,
        connect_timeout=options.connect_timeout,
        read_timeout=options.read_timeout,
        retries={"total_max_attempts": 1},
        max_pool_connections=options.max_connections,
        s3={"addressing_style": "path" if options.path_style else "auto"},
        # Content-MD5, computed from our own bytes, is the checksum the store verifies.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    session = boto3.session.Session()
    client: S3Client = session.client("s3", endpoint_url=options.endpoint_url, config=config)
    # botocore sends `Expect: 100-continue` with every body, then waits for the
    # store's "100 Continue" before sending it: a round trip per write that buys
    # nothing for copies of a few KiB (the write is refused, if at all, after).
    client.meta.events.unregister("before-call.s3", botocore.handlers.add_expect_header)
    return client


class S3Store:
    """Copies as objects in one bucket, below an optional key prefix.

    Keys are written once with `If-None-Match: *`. `probe()` checks that the
    store honours it; on a store that ignores it (or answers 501), the store
    falls back to HEAD-then-PUT, which keeps a copy from being replaced except
    by a writer racing on the same key within one round trip, and logs that it
    did so.
    """

    remote = True

    def __init__(self, options: S3Options, client: S3Client | None = None) -> None:
        self.options = options
        self.bucket = options.bucket
        self.prefix = options.prefix
        self.probe_key = f"{options.prefix}{PROBE_KEY}"
        self.conditional_writes = True
        self._client = client or make_client(options)
        self._sse_args: dict[str, str] = {}
        if options.sse:
            self._sse_args["ServerSideEncryption"] = options.sse
        if options.sse_kms_key_id:
            self._sse_args["SSEKMSKeyId"] = options.sse_kms_key_id

    def put(self, key: str, body: bytes, md5: bytes) -> PutResult:
        if not self.conditional_writes:
            existing = self._existing(key)
            if existing is not None:
                return existing
        try:
            response = self._put(key, body, md5, conditional=self.conditional_writes)
        except ClientError as err:
            code = _error_code(err)
            if code in ("PreconditionFailed", "412"):
                existing = self._existing(key)
                if existing is not None:
                    return existing
                # Deleted between the two calls: retrying writes it afresh.
                raise StoreError(code, ErrorKind.TRANSIENT, "the copy vanished") from None
            if code in ("NotImplemented", "501") and self.conditional_writes:
                self._fall_back("the store answered 501 to If-None-Match")
                raise StoreError(code, ErrorKind.TRANSIENT, "retrying without it") from None
            raise classify(err) from None
        except BotoCoreError as err:
            raise classify(err) from None
        return PutResult(
            etag=response.get("ETag", "").strip('"'), version_id=response.get("VersionId", "")
        )

    def get(self, key: str) -> StoredObject:
        try:
            got = self._client.get_object(Bucket=self.bucket, Key=key)
            body = got["Body"].read()
        except ClientError as err:
            if _error_code(err) in ("NoSuchKey", "404"):
                raise NoSuchObject(key) from None
            raise classify(err) from None
        except BotoCoreError as err:
            raise classify(err) from None
        return StoredObject(
            body=body,
            etag=got.get("ETag", "").strip('"'),
            version_id=got.get("VersionId", ""),
            stored_at_ms=int(got["LastModified"].timestamp() * 1000),
        )

    def list(self, prefix: str, start_after: str = "", limit: int = 1000) -> ListPage:
        args: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "MaxKeys": limit}
        if start_after:
            args["StartAfter"] = start_after
        try:
            page = self._client.list_objects_v2(**args)
        except (ClientError, BotoCoreError) as err:
            raise classify(err) from None
        items = [
            ObjectSummary(
                key=item["Key"],
                size=item["Size"],
                etag=item.get("ETag", "").strip('"'),
                stored_at_ms=int(item["LastModified"].timestamp() * 1000),
            )
            for item in page.get("Contents", [])
        ]
        return ListPage(items, truncated=bool(page.get("IsTruncated")))

    def probe(self) -> None:
        """The bucket exists, a write is accepted, and If-None-Match is honoured."""
        body = b"msgarchive probe: this object checks that archiving can write here\n"
        md5 = hashlib.md5(body, usedforsecurity=False).digest()
        try:
            # Not head_bucket: a HEAD answer has no body, so a refusal would say
            # only "403" instead of InvalidAccessKeyId or SignatureDoesNotMatch.
            self._client.list_objects_v2(Bucket=self.bucket, Prefix=self.probe_key, MaxKeys=1)
            self._put(self.probe_key, body, md5, conditional=False)
            try:
                self._put(self.probe_key, body, md5, conditional=True)
            except ClientError as err:
                if _error_code(err) in ("PreconditionFailed", "412"):
                    self.conditional_writes = True
                    return
                if _error_code(err) not in ("NotImplemented", "501"):
                    raise
            self._fall_back("the store does not honour If-None-Match")
        except (ClientError, BotoCoreError) as err:
            raise classify(err) from None

    def reconnect(self) -> None:
        old, self._client = self._client, make_client(self.options)
        old.close()

    def close(self) -> None:
        self._client.close()

    def _put(self, key: str, body: bytes, md5: bytes, *, conditional: bool) -> Any:
        extra: dict[str, str] = {"IfNoneMatch": "*"} if conditional else {}
        return self._client.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=body,
            ContentMD5=base64.b64encode(md5).decode(),
            ContentType=CONTENT_TYPE,
            **extra,  # type: ignore[arg-type]
            **self._sse_args,  # type: ignore[arg-type]
        )

    def _fall_back(self, why: str) -> None:
        if self.conditional_writes:
            log.warning("conditional writes unavailable; using HEAD-then-PUT", reason=why)
        self.conditional_writes = False

    def _existing(self, key: str) -> PutResult | None:
        """The copy already under `key`, for an ack that describes it truly."""
        try:
            got = self._client.get_object(Bucket=self.bucket, Key=key)
            body = got["Body"].read()
        except ClientError as err:
            if _error_code(err) in ("NoSuchKey", "404"):
                return None
            raise classify(err) from None
        except BotoCoreError as err:
            raise classify(err) from None
        return PutResult(
            etag=got.get("ETag", "").strip('"'),
            version_id=got.get("VersionId", ""),
            existing_copy=body,
        )


def _error_code(err: ClientError) -> str:
    error: dict[str, Any] = dict(err.response.get("Error", {}))
    code = str(error.get("Code", ""))
    if not code:
        status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code = str(status or "Unknown")
    return code


def classify(err: ClientError | BotoCoreError) -> StoreError:
    """The StoreError for a botocore error: its code and how to treat it."""
    if isinstance(err, BotoCoreError):
        # Connection refused or reset, timeouts, and the like: retry.
        return StoreError(type(err).__name__, ErrorKind.TRANSIENT, str(err))
    code = _error_code(err)
    status = int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    message = str(err.response.get("Error", {}).get("Message", ""))
    # A HEAD answer carries no error document: only the status is known.
    if code == "404":
        code = "NoSuchBucket"
    if code in _THROTTLING_CODES or status in (429, 503):
        kind = ErrorKind.THROTTLED
    elif code in _FATAL_CODES:
        kind = ErrorKind.FATAL
    elif code in _TRANSIENT_CLIENT_CODES or status >= 500 or status == 0:
        kind = ErrorKind.TRANSIENT
    elif code == "403":
        code, kind = "AccessDenied", ErrorKind.TRANSIENT
    else:
        kind = ErrorKind.REJECTED
    return StoreError(code, kind, message)
