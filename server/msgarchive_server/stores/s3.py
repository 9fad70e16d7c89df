"""The S3 store: AWS S3 or any S3-compatible endpoint.

Copies are written with obstore (Rust's object_store), which costs a quarter
of boto3's CPU per small PUT (docs/benchmarks.md): every write carries
`x-amz-checksum-sha256` of the exact bytes, which the store verifies (a
mismatch is `BadDigest`), and `If-None-Match: *`, so a key is written once: a
`412` means the copy is already there. Everything else (reads, listing, the
existing copy behind a 412, the probe's listing) uses boto3, except `read`,
the bytes alone of many copies (an export), which obstore fetches at a
tenth of boto3's CPU per GET. Both take their
credentials from one boto3 session: the standard AWS chain, refreshed as it
refreshes. Neither retries on its own, so the pipeline counts every attempt;
their errors are translated into `StoreError` here and never leak further.
"""

from __future__ import annotations

import builtins
import datetime
import math
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus
from xml.etree import ElementTree

import boto3
import botocore.config
import botocore.handlers
import obstore
import obstore.exceptions
import structlog
from botocore.awsrequest import AWSRequest
from botocore.exceptions import BotoCoreError, ClientError
from obstore.store import S3Store as ObjectStoreS3

from msgarchive_server.stores.base import (
    COPY_CONTENT_TYPE,
    Capability,
    ErrorKind,
    ListPage,
    NoSuchObject,
    ObjectSummary,
    PutResult,
    Retention,
    StoredObject,
    StoreError,
    StoreOptions,
    VersionSummary,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from obstore.store import S3Credential

CONTENT_TYPE = COPY_CONTENT_TYPE
# How old the last check of the bucket's retention may be before a write
# checks it again: a default retention removed by the bucket's owner stops
# archiving within this long.
RETENTION_RECHECK_S = 60.0
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
    "BadDigest",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "ConditionalRequestConflict",
    "XAmzContentSHA256Mismatch",
    "OperationAborted",
}


# A listing page: its versions, its folders, the marker of the next (None: last).
_Page = tuple[list[VersionSummary], list[str], dict[str, str] | None]
_PageOf = Callable[[str, int, dict[str, str], str], _Page]


@dataclass(frozen=True, slots=True, kw_only=True)
class S3Options(StoreOptions):
    """The bucket, and how to reach it (`StoreOptions`)."""

    bucket: str
    prefix: str = ""
    # The retention every copy must get from the bucket's default retention.
    retention: Retention | None = None


def make_client(options: S3Options, session: boto3.session.Session) -> S3Client:
    """A boto3 S3 client with botocore's retries off (the pipeline retries)."""
    config = botocore.config.Config(
        region_name=options.region,
        connect_timeout=options.connect_timeout,
        read_timeout=options.read_timeout,
        retries={"total_max_attempts": 1},
        max_pool_connections=options.max_connections,
        s3={"addressing_style": "path" if options.path_style else "auto"},
        # SigV4 for the presigned listing too (botocore would presign with V2).
        signature_version="s3v4",
        # It writes only the probe's object; reads are checked by the reader.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    client: S3Client = session.client("s3", endpoint_url=options.endpoint_url, config=config)
    # botocore sends `Expect: 100-continue` with every body, then waits for the
    # store's "100 Continue" before sending it: a round trip per write that buys
    # nothing for copies of a few KiB (the write is refused, if at all, after).
    client.meta.events.unregister("before-call.s3", botocore.handlers.add_expect_header)
    return client


class ChainCredentials:
    """obstore's credentials, from a boto3 session's credential chain.

    obstore keeps what this returns until `expires_at`. botocore refreshes
    temporary credentials (web identity, instance and task roles) 10 to 15
    minutes before they expire, so five minutes never outlives them.
    """

    TTL = datetime.timedelta(minutes=5)

    def __init__(self, session: boto3.session.Session) -> None:
        credentials = session.get_credentials()
        if credentials is None:
            raise StoreError(
                "NoCredentialsError", ErrorKind.TRANSIENT, "the AWS chain has no credentials"
            )
        self.credentials = credentials

    def __call__(self) -> S3Credential:
        frozen = self.credentials.get_frozen_credentials()
        return {
            "access_key_id": frozen.access_key or "",
            "secret_access_key": frozen.secret_key or "",
            "token": frozen.token,
            "expires_at": datetime.datetime.now(datetime.UTC) + self.TTL,
        }


def make_writer(options: S3Options, session: boto3.session.Session, region: str) -> ObjectStoreS3:
    """The obstore client copies are written with: no retries of its own (the
    pipeline retries), a SHA-256 checksum on every write, the bucket's SSE."""
    endpoint = options.endpoint_url
    if endpoint and not options.path_style:
        # Virtual-hosted style against a custom endpoint: the bucket is in the host.
        scheme, _, host = endpoint.partition("://")
        endpoint = f"{scheme}://{options.bucket}.{host}"
    settings: dict[str, str] = {}
    if endpoint:  # none: AWS's own endpoint for the region (obstore refuses None)
        settings["endpoint"] = endpoint
    if options.sse:
        settings["server_side_encryption"] = options.sse
    if options.sse_kms_key_id:
        settings["sse_kms_key_id"] = options.sse_kms_key_id
    return ObjectStoreS3(
        options.bucket,
        region=region,
        virtual_hosted_style_request=not options.path_style,
        credential_provider=ChainCredentials(session),
        checksum_algorithm="sha256",
        client_options={
            "allow_http": bool(endpoint and endpoint.startswith("http://")),
            "connect_timeout": f"{options.connect_timeout}s",
            "timeout": f"{options.read_timeout}s",
            "pool_max_idle_per_host": str(options.max_connections),
            # AWS refuses a write to an Object Lock bucket unless it names its
            # checksum's algorithm (or sends Content-MD5, which obstore cannot).
            "default_headers": {"x-amz-sdk-checksum-algorithm": "SHA256"},
        },
        retry_config={"max_retries": 0, "retry_timeout": datetime.timedelta(0)},
        **settings,  # type: ignore[arg-type]
    )


class S3Store:
    """Copies as objects in one bucket, below an optional key prefix.

    Keys are written once with `If-None-Match: *`. `probe()` checks that the
    store honours it; on a store that ignores it (or answers 501), the store
    falls back to HEAD-then-PUT, which keeps a copy from being replaced except
    by a writer racing on the same key within one round trip, and logs that it
    did so.
    """

    remote = True
    capabilities = (
        Capability.basic() | Capability.VERSIONS | Capability.LEGAL_HOLD | Capability.RETENTION
    )

    def __init__(self, options: S3Options, session: boto3.session.Session | None = None) -> None:
        self.options = options
        self.bucket = options.bucket
        self.prefix = options.prefix
        self.probe_key = f"{options.prefix}{PROBE_KEY}"
        self.conditional_writes = True
        self.retention: Retention | None = None  # as last verified
        self._retention_checked = -math.inf  # time.monotonic() of that check
        self._session = session
        self._lock = threading.Lock()
        self._connect()

    def _connect(self) -> None:
        session = self._session or boto3.session.Session()
        self._client = make_client(self.options, session)
        self._writer: ObjectStoreS3 | StoreError
        try:
            self._writer = make_writer(self.options, session, self._client.meta.region_name)
        except StoreError as err:
            # No credentials yet: every write fails with this until reconnect() finds some.
            self._writer = err

    def put(self, key: str, body: bytes, content_type: str = CONTENT_TYPE) -> PutResult:
        if self.options.retention and (
            time.monotonic() - self._retention_checked > RETENTION_RECHECK_S
        ):
            with self._lock:  # one writer checks; the others write meanwhile
                if time.monotonic() - self._retention_checked > RETENTION_RECHECK_S:
                    self._check_retention()
        if not self.conditional_writes:
            existing = self._existing(key)
            if existing is not None:
                return existing
        try:
            written = self._write(
                key, body, conditional=self.conditional_writes, content_type=content_type
            )
        except obstore.exceptions.AlreadyExistsError:
            existing = self._existing(key)
            if existing is not None:
                return existing
            # Deleted between the two calls: retrying writes it afresh.
            raise StoreError(
                "PreconditionFailed", ErrorKind.TRANSIENT, "the copy vanished"
            ) from None
        except StoreError as err:
            if err.code in ("NotImplemented", "501") and self.conditional_writes:
                self._fall_back("the store answered 501 to If-None-Match")
                raise StoreError(err.code, ErrorKind.TRANSIENT, "retrying without it") from None
            raise
        return written

    def get(self, key: str) -> StoredObject:
        return self.get_version(key, "")

    def read(self, key: str, version_id: str = "") -> bytes:
        writer = self._writer
        if isinstance(writer, StoreError):
            raise writer
        try:
            got = obstore.get(writer, key, options={"version": version_id} if version_id else None)
            return bytes(got.bytes())
        except obstore.exceptions.NotFoundError:
            raise NoSuchObject(key) from None
        except Exception as err:  # obstore raises builtins and its own
            failed = classify_write_error(err)
            if failed.code in ("NoSuchKey", "NoSuchVersion"):
                raise NoSuchObject(key) from None
            raise failed from None

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

    def versions(
        self, prefix: str, page_size: int = 1000, parallel: int = 1
    ) -> Iterator[VersionSummary]:
        """Every version and delete marker under `prefix`, in key order (and,
        within a key, newest first), read `page_size` at a time.

        With `parallel` > 1, each folder directly below `prefix` is listed by
        a thread of its own, a few pages ahead of the caller (a listing is
        one request a page, and the store answers several at once), still in
        key order; else the next page is fetched while the caller works
        through this one. (The objects directly below `prefix` are then held
        until their place comes: under `sent_messages/` there are none
        unless someone else wrote them.)

        The pages are fetched with botocore's signing and HTTP session but
        parsed here: botocore's own parser (and dateutil, for a date this
        listing does not need) took most of verify's time, 0.1 ms a version.

        On a bucket that has never had versioning on, every object is its
        one version: the pages are then ListObjectsV2's, which costs a store
        less than its version listing (SeaweedFS: a quarter of the CPU).
        """
        page_of = self._objects_page if self._never_versioned() else self._versions_page
        if parallel <= 1:
            yield from self._pages(page_of, prefix, page_size, "")
            return
        loose: builtins.list[VersionSummary] = []  # the objects directly below `prefix`
        folders: builtins.list[str] = []
        for found, below in self._pages_of(page_of, prefix, page_size, delimiter="/"):
            loose += found
            folders += below
        stop = threading.Event()
        with ThreadPoolExecutor(parallel, thread_name_prefix="versions") as pool:
            queues = [queue.Queue[Any](maxsize=4) for _ in folders]
            for folder, pages in zip(folders, queues, strict=True):
                pool.submit(self._fill, page_of, pages, folder, page_size, stop)
            try:
                at = 0
                for folder, pages in zip(folders, queues, strict=True):
                    # A loose key before a folder's name is before all its keys.
                    while at < len(loose) and loose[at].key < folder:
                        yield loose[at]
                        at += 1
                    while (page := pages.get()) is not None:
                        if isinstance(page, BaseException):
                            raise page
                        yield from page
                yield from loose[at:]
            finally:
                stop.set()  # a caller that stops early: the threads stop too

    def _fill(
        self,
        page_of: _PageOf,
        pages: queue.Queue[Any],
        folder: str,
        page_size: int,
        stop: threading.Event,
    ) -> None:
        """Put `folder`'s pages on `pages`, then None (or the error that ended it)."""
        try:
            for found, _ in self._pages_of(page_of, folder, page_size):
                while not stop.is_set():
                    try:
                        pages.put(found, timeout=0.5)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            item: Any = None
        except Exception as err:  # the caller raises it
            item = err
        while not stop.is_set():
            try:
                pages.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def _pages(
        self, page_of: _PageOf, prefix: str, page_size: int, delimiter: str
    ) -> Iterator[VersionSummary]:
        with ThreadPoolExecutor(1, thread_name_prefix="versions") as ahead:
            page = ahead.submit(page_of, prefix, page_size, {}, delimiter)
            while True:
                found, _, marker = page.result()
                if marker is not None:
                    page = ahead.submit(page_of, prefix, page_size, marker, delimiter)
                yield from found
                if marker is None:
                    return

    def _pages_of(
        self, page_of: _PageOf, prefix: str, page_size: int, delimiter: str = ""
    ) -> Iterator[tuple[builtins.list[VersionSummary], builtins.list[str]]]:
        """Each page's versions and folders, one request at a time."""
        marker: dict[str, str] | None = {}
        while marker is not None:
            found, folders, marker = page_of(prefix, page_size, marker, delimiter)
            yield found, folders

    def _never_versioned(self) -> bool:
        """Whether the bucket has never had versioning on (no status at all:
        not Enabled, not Suspended); False when the store will not say."""
        try:
            answer = self._client.get_bucket_versioning(Bucket=self.bucket)
        except (ClientError, BotoCoreError):
            return False
        return not answer.get("Status")

    def _objects_page(
        self, prefix: str, page_size: int, marker: dict[str, str], delimiter: str = ""
    ) -> _Page:
        """One page of ListObjectsV2 as `_versions_page` gives one: each
        object its only version (id "", the latest, not a delete marker)."""
        root, decode = self._listing("list_objects_v2", prefix, page_size, marker, delimiter)
        found = [
            VersionSummary(
                decode(_text(v, "Key")), "", _text(v, "ETag").strip('"'),
                int(_text(v, "Size") or 0), True, False,
            )
            for v in root.iter(f"{_S3_NS}Contents")
        ]  # fmt: skip
        folders = [decode(_text(c, "Prefix")) for c in root.iter(f"{_S3_NS}CommonPrefixes")]
        token = _text(root, "NextContinuationToken")
        if _text(root, "IsTruncated") != "true" or not token:
            return found, folders, None
        return found, folders, {"ContinuationToken": token}

    def _versions_page(
        self, prefix: str, page_size: int, marker: dict[str, str], delimiter: str = ""
    ) -> _Page:
        """One page of the version listing: its versions, its folders (with a
        `delimiter`), and the marker of the next page (None: the last)."""
        root, decode = self._listing("list_object_versions", prefix, page_size, marker, delimiter)
        found = [
            VersionSummary(
                decode(_text(v, "Key")), _version(_text(v, "VersionId")),
                _text(v, "ETag").strip('"'), int(_text(v, "Size") or 0),
                _text(v, "IsLatest") == "true", v.tag == f"{_S3_NS}DeleteMarker",
            )
            for v in root
            if v.tag in (f"{_S3_NS}Version", f"{_S3_NS}DeleteMarker")
        ]  # fmt: skip
        # A page lists versions and markers apart: put them back in order.
        found.sort(key=lambda v: (v.key, not v.is_latest))
        folders = [decode(_text(c, "Prefix")) for c in root.iter(f"{_S3_NS}CommonPrefixes")]
        if _text(root, "IsTruncated") != "true":
            return found, folders, None
        return (
            found,
            folders,
            {
                "KeyMarker": decode(_text(root, "NextKeyMarker")),
                "VersionIdMarker": _text(root, "NextVersionIdMarker"),
            },
        )

    def _listing(
        self, operation: str, prefix: str, page_size: int, marker: dict[str, str], delimiter: str
    ) -> tuple[ElementTree.Element, Callable[[str], str]]:
        """One page of a listing `operation`, and how to decode its keys."""
        params: dict[str, Any] = {
            "Bucket": self.bucket, "Prefix": prefix, "MaxKeys": page_size, **marker
        }  # fmt: skip
        if delimiter:
            params["Delimiter"] = delimiter
        root = self._get_xml(operation, params)
        # botocore asks for url-encoded keys; a store may not encode them.
        return root, unquote_plus if _text(root, "EncodingType") == "url" else str

    def _get_xml(self, operation: str, params: dict[str, Any]) -> ElementTree.Element:
        """A GET operation's XML answer, signed by botocore, unparsed by it."""
        try:
            url = self._client.generate_presigned_url(operation, Params=params, ExpiresIn=900)
            request = AWSRequest(method="GET", url=url).prepare()
            # The client's own HTTP session: its connection pool, proxies,
            # certificates and timeouts.
            answer = self._client._endpoint.http_session.send(request)  # type: ignore[attr-defined]
        except BotoCoreError as err:
            raise classify(err) from None
        body = answer.content
        if answer.status_code != 200:
            text = body.decode("utf-8", "replace")
            code, message = _S3_CODE.search(text), _S3_MESSAGE.search(text)
            raise classify_answer(
                code[1] if code else str(answer.status_code),
                answer.status_code,
                message[1] if message else "",
            )
        try:
            return ElementTree.fromstring(body)  # noqa: S314 (the bucket's own listing)
        except ElementTree.ParseError as err:
            raise StoreError("MalformedListing", ErrorKind.TRANSIENT, str(err)) from None

    def get_version(self, key: str, version_id: str) -> StoredObject:
        """One version of an object (the latest when `version_id` is "")."""
        args = {"VersionId": version_id} if version_id else {}
        try:
            got = self._client.get_object(Bucket=self.bucket, Key=key, **args)  # type: ignore[arg-type]
            body = got["Body"].read()
        except ClientError as err:
            if _error_code(err) in ("NoSuchKey", "NoSuchVersion", "404"):
                raise NoSuchObject(key) from None
            raise classify(err) from None
        except BotoCoreError as err:
            raise classify(err) from None
        until = got.get("ObjectLockRetainUntilDate")
        return StoredObject(
            body=body,
            etag=got.get("ETag", "").strip('"'),
            version_id=got.get("VersionId", ""),
            stored_at_ms=int(got["LastModified"].timestamp() * 1000),
            retention_mode=str(got.get("ObjectLockMode", "")),
            retain_until_ms=int(until.timestamp() * 1000) if until else 0,
            legal_hold=got.get("ObjectLockLegalHoldStatus") == "ON",
        )

    def set_legal_hold(self, key: str, version_id: str, on: bool) -> None:
        """Place (`on`) or lift an S3 legal hold on one version."""
        args = {"VersionId": version_id} if version_id else {}
        try:
            self._client.put_object_legal_hold(
                Bucket=self.bucket,
                Key=key,
                LegalHold={"Status": "ON" if on else "OFF"},
                **args,  # type: ignore[arg-type]
            )
        except (ClientError, BotoCoreError) as err:
            raise classify(err) from None

    def probe(self) -> None:
        """The bucket exists, keeps copies under the configured retention, the
        write path's writes are accepted, and If-None-Match is honoured."""
        body = b"msgarchive probe: this object checks that archiving can write here\n"
        try:
            # Not head_bucket: a HEAD answer has no body, so a refusal would say
            # only "403" instead of InvalidAccessKeyId or SignatureDoesNotMatch.
            self._client.list_objects_v2(Bucket=self.bucket, Prefix=self.probe_key, MaxKeys=1)
        except (ClientError, BotoCoreError) as err:
            raise classify(err) from None
        if self.options.retention:
            self._check_retention()
        self._write(self.probe_key, body, conditional=False)
        try:
            self._write(self.probe_key, body, conditional=True)
        except obstore.exceptions.AlreadyExistsError:
            self.conditional_writes = True
            return
        except StoreError as err:
            if err.code not in ("NotImplemented", "501"):
                raise
        self._fall_back("the store does not honour If-None-Match")

    def reconnect(self) -> None:
        """A new session: credentials, region and connections read afresh."""
        with self._lock:
            old = self._client
            self._connect()
        old.close()

    def close(self) -> None:
        self._client.close()

    def _write(
        self, key: str, body: bytes, *, conditional: bool, content_type: str = CONTENT_TYPE
    ) -> PutResult:
        """One PUT; AlreadyExistsError for a 412, StoreError for anything else."""
        writer = self._writer
        if isinstance(writer, StoreError):
            raise writer
        try:
            written = obstore.put(
                writer,
                key,
                body,
                mode="create" if conditional else "overwrite",
                use_multipart=False,
                attributes={"Content-Type": content_type},
            )
        except obstore.exceptions.AlreadyExistsError:
            raise
        except Exception as err:  # obstore raises builtins and its own; all mean "not stored"
            raise classify_write_error(err) from None
        return PutResult(
            etag=(written["e_tag"] or "").strip('"'), version_id=written["version"] or ""
        )

    def _check_retention(self) -> None:
        """Verify that the bucket locks every new version for at least the
        configured retention: versioning on, Object Lock on, and a default
        retention as strict and as long. StoreError FATAL otherwise: archiving
        stops (fails closed) until the bucket is fixed."""
        wanted = self.options.retention
        assert wanted is not None
        try:
            versioning = self._client.get_bucket_versioning(Bucket=self.bucket)
            lock = self._client.get_object_lock_configuration(Bucket=self.bucket)
        except ClientError as err:
            if _error_code(err) == "ObjectLockConfigurationNotFoundError":
                raise _unprotected(wanted, "Object Lock is not enabled on the bucket") from None
            raise classify(err) from None
        except BotoCoreError as err:
            raise classify(err) from None
        if versioning.get("Status") != "Enabled":
            raise _unprotected(wanted, "the bucket is not versioned")
        config = lock.get("ObjectLockConfiguration", {})
        default = config.get("Rule", {}).get("DefaultRetention", {})
        if config.get("ObjectLockEnabled") != "Enabled" or "Mode" not in default:
            raise _unprotected(wanted, "the bucket has no default retention")
        days = int(default.get("Days") or 0) or 365 * int(default.get("Years") or 0)
        found = Retention(str(default["Mode"]), days)
        if not found.covers(wanted):
            raise _unprotected(
                wanted, f"the bucket's default retention is {found.mode} for {found.days} days"
            )
        self.retention = found
        self._retention_checked = time.monotonic()

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


_S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


def _text(element: ElementTree.Element, tag: str) -> str:
    """The text of `element`'s child `tag` (in S3's namespace), or ""."""
    return element.findtext(f"{_S3_NS}{tag}") or ""


def _version(listed: str | None) -> str:
    """A listing's version id as a write reports it: an object written without
    versioning is listed as version "null", and a write reports none."""
    return "" if listed in (None, "null") else str(listed)


def _unprotected(wanted: Retention, why: str) -> StoreError:
    return StoreError(
        "RetentionNotEnforced",
        ErrorKind.FATAL,
        f"{why}; copies must be kept {wanted.mode} for {wanted.days} days: enable versioning "
        "and Object Lock with a default retention at least that strict and long",
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
    status = int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    message = str(err.response.get("Error", {}).get("Message", ""))
    return classify_answer(_error_code(err), status, message)


# What obstore's errors say: the HTTP status and S3's error document, or the
# kind of transport failure (object_store's HttpErrorKind).
_STATUS = re.compile(r"non-2xx status code: (\d{3})")
_S3_CODE = re.compile(r"<Code>([^<]+)</Code>")
_S3_MESSAGE = re.compile(r"<Message>([^<]*)</Message>")
_HTTP_KIND = re.compile(r"HttpError \{\s*kind: (\w+)")
# object_store's transport failures, named as botocore names them, so that
# logs and metrics keep one vocabulary whichever client failed.
_TRANSPORT_CODES = {
    "Connect": "EndpointConnectionError",
    "Timeout": "ReadTimeoutError",
}


def classify_write_error(err: Exception) -> StoreError:
    """The StoreError for a failed obstore request (a write, or a read's): its
    code and how to treat it."""
    text = str(err)
    status = _STATUS.search(text)
    if status is not None:
        code = _S3_CODE.search(text)
        message = _S3_MESSAGE.search(text)
        return classify_answer(
            code[1] if code else status[1], int(status[1]), message[1] if message else ""
        )
    kind = _HTTP_KIND.search(text)
    if kind is not None:
        # Refused, reset, timed out, cut off mid-answer: retry.
        name = _TRANSPORT_CODES.get(kind[1], "ConnectionClosedError")
        return StoreError(name, ErrorKind.TRANSIENT, f"{kind[1]}: the request did not complete")
    return StoreError(type(err).__name__, ErrorKind.TRANSIENT, text.split("\n", 1)[0][:300])


def classify_answer(code: str, status: int, message: str = "") -> StoreError:
    """The StoreError for an error answer from S3: its code and how to treat it."""
    # A HEAD answer carries no error document: only the status is known.
    if code == "404":
        code = "NoSuchBucket"
    if code in _THROTTLING_CODES or status in (429, 503):
        kind = ErrorKind.THROTTLED
    elif code in _FATAL_CODES:
        kind = ErrorKind.FATAL
    elif code in ("AccessDenied", "403"):
        code, kind = "AccessDenied", ErrorKind.DENIED
    elif code in _TRANSIENT_CLIENT_CODES or status >= 500 or status == 0:
        kind = ErrorKind.TRANSIENT
    else:
        kind = ErrorKind.REJECTED
    return StoreError(code, kind, message)
