"""What the S3 store sends, and how it reads errors.

SeaweedFS does not do aws:kms, so the KMS request is checked here against a
loopback server that records the request; the integration suite covers the
rest against a real server.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import boto3
import pytest
from botocore.exceptions import ClientError, ConnectTimeoutError

from msgarchive_server.stores import ErrorKind, PutResult, Retention, StoreError
from msgarchive_server.stores import s3 as s3_module
from msgarchive_server.stores.s3 import (
    CONTENT_TYPE,
    S3Options,
    S3Store,
    classify,
    classify_write_error,
)

BODY = b"copy"


class Recorder(BaseHTTPRequestHandler):
    """Answers every PUT as S3 would, and keeps what it was sent."""

    seen: ClassVar[list[tuple[str, str, dict[str, str], bytes]]] = []
    protocol_version = "HTTP/1.1"

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.seen.append((self.command, self.path, headers, body))
        self.send_response(200)
        self.send_header("ETag", '"kms-etag"')
        self.send_header("x-amz-version-id", "v7")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def recorder() -> Iterator[str]:
    Recorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def test_kms_encryption_is_requested_with_the_key_id(recorder: str) -> None:
    session = boto3.session.Session(
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret", region_name="eu-west-1"
    )
    options = S3Options(
        bucket="archive-bucket",
        endpoint_url=recorder,
        path_style=True,
        sse="aws:kms",
        sse_kms_key_id="alias/archive",
    )
    result = S3Store(options, session=session).put("a/k.json.lz4", BODY)
    assert (result.etag, result.version_id, result.already_existed) == ("kms-etag", "v7", False)
    ((method, path, headers, body),) = Recorder.seen
    assert (method, path, body) == ("PUT", "/archive-bucket/a/k.json.lz4", BODY)
    assert headers["x-amz-server-side-encryption"] == "aws:kms"
    assert headers["x-amz-server-side-encryption-aws-kms-key-id"] == "alias/archive"
    assert headers["if-none-match"] == "*"
    assert headers["content-type"] == CONTENT_TYPE
    assert (
        headers["x-amz-checksum-sha256"] == base64.b64encode(hashlib.sha256(BODY).digest()).decode()
    )
    authorization = headers["authorization"]
    assert authorization.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-1/s3/aws4_request" in authorization
    # AWS and moto refuse a write to an Object Lock bucket that names no checksum
    # algorithm (Content-MD5 or this header), and every x-amz-* header is signed.
    assert headers["x-amz-sdk-checksum-algorithm"] == "SHA256"
    signed = authorization.split("SignedHeaders=")[1].split(",")[0].split(";")
    assert {"x-amz-sdk-checksum-algorithm", "x-amz-checksum-sha256", "if-none-match"} <= set(signed)


def client_error(code: str, status: int) -> ClientError:
    response = {
        "Error": {"Code": code, "Message": "m"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "PutObject")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("code", "status", "kind"),
    [
        ("SlowDown", 503, ErrorKind.THROTTLED),
        ("ServiceUnavailable", 503, ErrorKind.THROTTLED),
        ("TooManyRequests", 429, ErrorKind.THROTTLED),
        ("InternalError", 500, ErrorKind.TRANSIENT),
        ("BadDigest", 400, ErrorKind.TRANSIENT),
        ("RequestTimeout", 400, ErrorKind.TRANSIENT),
        ("AccessDenied", 403, ErrorKind.DENIED),
        ("NoSuchBucket", 404, ErrorKind.FATAL),
        ("InvalidAccessKeyId", 403, ErrorKind.FATAL),
        ("SignatureDoesNotMatch", 403, ErrorKind.FATAL),
        ("404", 404, ErrorKind.FATAL),
        ("InvalidArgument", 400, ErrorKind.REJECTED),
    ],
)
def test_error_classification(code: str, status: int, kind: ErrorKind) -> None:
    assert classify(client_error(code, status)).kind is kind


def test_connection_errors_are_transient() -> None:
    error = classify(ConnectTimeoutError(endpoint_url="http://127.0.0.1:1"))
    assert error.kind is ErrorKind.TRANSIENT
    assert error.code == "ConnectTimeoutError"


# What obstore 0.12 says for these failures (captured against SeaweedFS and the
# fault proxy; the integration suite checks the same cases live).
ANSWER = (
    "Generic S3 error: Error performing PUT http://127.0.0.1:1/b/k in 8.7ms - Server "
    'returned non-2xx status code: {status}: <?xml version="1.0" encoding="UTF-8"?>'
    "<Error><Code>{code}</Code><Message>{message}</Message></Error>\n\nDebug source: ..."
)
TRANSPORT = (
    "Generic S3 error: Error performing PUT http://127.0.0.1:1/b/k in 2.6ms - HTTP error: "
    'error sending request\n\nDebug source: Generic {{ store: "S3", source: RetryError('
    "RetryErrorImpl {{ inner: Http( HttpError {{\n   kind: {kind},\n source: reqwest::Error"
)


@pytest.mark.parametrize(
    ("text", "code", "kind"),
    [
        (ANSWER.format(status="503 Service Unavailable", code="SlowDown", message="m"),
         "SlowDown", ErrorKind.THROTTLED),
        (ANSWER.format(status="500 Internal Server Error", code="InternalError", message="m"),
         "InternalError", ErrorKind.TRANSIENT),
        (ANSWER.format(status="403 Forbidden", code="SignatureDoesNotMatch", message="m"),
         "SignatureDoesNotMatch", ErrorKind.FATAL),
        (ANSWER.format(status="404 Not Found", code="NoSuchBucket", message="m"),
         "NoSuchBucket", ErrorKind.FATAL),
        (ANSWER.format(status="400 Bad Request", code="BadDigest", message="m"),
         "BadDigest", ErrorKind.TRANSIENT),
        (ANSWER.format(status="400 Bad Request", code="InvalidArgument", message="m"),
         "InvalidArgument", ErrorKind.REJECTED),
        ("Server returned non-2xx status code: 501 Not Implemented: ", "501", ErrorKind.TRANSIENT),
        (TRANSPORT.format(kind="Connect"), "EndpointConnectionError", ErrorKind.TRANSIENT),
        (TRANSPORT.format(kind="Timeout"), "ReadTimeoutError", ErrorKind.TRANSIENT),
        (TRANSPORT.format(kind="Interrupted"), "ConnectionClosedError", ErrorKind.TRANSIENT),
        ("something no one expected", "RuntimeError", ErrorKind.TRANSIENT),
    ],
)  # fmt: skip
def test_obstore_errors_are_classified(text: str, code: str, kind: ErrorKind) -> None:
    error = classify_write_error(RuntimeError(text))
    assert (error.code, error.kind) == (code, kind)


def test_an_error_answer_without_a_code_is_named_by_its_status() -> None:
    """A HEAD's error has no body: only the status names it (404: the bucket)."""
    bare: Any = {"Error": {}, "ResponseMetadata": {"HTTPStatusCode": int("404")}}
    error = classify(ClientError(bare, "HeadObject"))
    assert (error.code, error.kind) == ("NoSuchBucket", ErrorKind.FATAL)
    nothing = classify(ClientError({"Error": {}}, "HeadObject"))
    assert (nothing.code, nothing.kind) == ("Unknown", ErrorKind.TRANSIENT)  # status 0: no answer


SESSION = boto3.session.Session(
    aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret", region_name="eu-west-1"
)


@pytest.mark.parametrize(
    ("endpoint", "path_style", "writer_endpoint", "allow_http", "addressing"),
    [
        ("http://127.0.0.1:8333", True, "http://127.0.0.1:8333", "true", "path"),
        ("https://s3.example.net", False, "https://archive.s3.example.net", "false", "auto"),
        (None, False, None, "false", "auto"),
    ],
)
def test_both_clients_address_the_bucket_as_configured(
    endpoint: str | None, path_style: bool, writer_endpoint: str | None, allow_http: str,
    addressing: str,
) -> None:  # fmt: skip
    options = S3Options(bucket="archive", endpoint_url=endpoint, path_style=path_style)
    store = S3Store(options, session=SESSION)
    writer = store._writer
    assert not isinstance(writer, StoreError)
    assert writer.config.get("endpoint") == writer_endpoint
    assert writer.config.get("virtual_hosted_style_request", "false") == str(not path_style).lower()
    assert writer.client_options is not None
    assert str(writer.client_options["allow_http"]).lower() == allow_http
    assert getattr(store._client.meta.config, "s3") == {"addressing_style": addressing}  # noqa: B009
    assert store.remote  # a store that can be down: the circuit opens rather than exiting


class BucketSettings:
    """What a bucket answers about its versioning and Object Lock, and how
    often it was asked."""

    def __init__(self, versioning: dict[str, Any], lock: dict[str, Any]) -> None:
        self.versioning, self.lock, self.asked = versioning, lock, 0

    def get_bucket_versioning(self, **_: object) -> dict[str, Any]:
        self.asked += 1
        return self.versioning

    def get_object_lock_configuration(self, **_: object) -> dict[str, Any]:
        return {"ObjectLockConfiguration": self.lock}

    def close(self) -> None:
        """Nothing to close."""


def locked(mode: str = "GOVERNANCE", **period: int) -> dict[str, Any]:
    return {"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": mode, **period}}}


def store_with(settings: BucketSettings, wanted: Retention) -> S3Store:
    store = S3Store(S3Options(bucket="archive", retention=wanted), session=SESSION)
    store._client = settings  # type: ignore[assignment]
    store._write = lambda key, body, **_: PutResult(etag="e", version_id="v")  # type: ignore[method-assign]
    return store


ENABLED = {"Status": "Enabled"}


@pytest.mark.parametrize(
    ("versioning", "lock", "wanted", "found"),
    [
        (ENABLED, locked(Days=30), Retention("GOVERNANCE", 30), Retention("GOVERNANCE", 30)),
        (ENABLED, locked(Years=1), Retention("GOVERNANCE", 365), Retention("GOVERNANCE", 365)),
        (ENABLED, locked("COMPLIANCE", Days=7), Retention("GOVERNANCE", 7),
         Retention("COMPLIANCE", 7)),
        ({}, locked(Days=30), Retention("GOVERNANCE", 1), "the bucket is not versioned"),
        ({"Status": "Suspended"}, locked(Days=30), Retention("GOVERNANCE", 1),
         "the bucket is not versioned"),
        (ENABLED, {"Rule": locked()["Rule"]}, Retention("GOVERNANCE", 1), "no default retention"),
        (ENABLED, {"ObjectLockEnabled": "Enabled"}, Retention("GOVERNANCE", 1),
         "no default retention"),
        (ENABLED, locked(Days=29), Retention("GOVERNANCE", 30), "GOVERNANCE for 29 days"),
    ],
)  # fmt: skip
def test_the_retention_a_bucket_reports_is_checked_against_the_wanted_one(
    versioning: dict[str, Any], lock: dict[str, Any], wanted: Retention, found: Retention | str
) -> None:
    # Copies, not the literals: a check written with `is` would pass on interned strings.
    settings = BucketSettings(json.loads(json.dumps(versioning)), json.loads(json.dumps(lock)))
    store = store_with(settings, wanted)
    if isinstance(found, Retention):
        store._check_retention()
        assert store.retention == found
        return
    with pytest.raises(StoreError) as raised:
        store._check_retention()
    assert (raised.value.code, raised.value.kind) == ("RetentionNotEnforced", ErrorKind.FATAL)
    assert found in str(raised.value)
    assert store.retention is None


def test_the_bucket_retention_is_checked_on_the_first_write_then_once_a_recheck_period(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    settings = BucketSettings(ENABLED, locked(Days=1))
    store = store_with(settings, Retention("GOVERNANCE", 1))
    store.put("a", BODY)
    assert settings.asked == 1  # never checked before: checked now
    now[0] += s3_module.RETENTION_RECHECK_S
    store.put("b", BODY)
    assert settings.asked == 1  # exactly one period later: not yet
    now[0] += 0.001
    store.put("c", BODY)
    assert settings.asked == 2
    store.put("d", BODY)
    assert settings.asked == 2  # just checked


@pytest.mark.parametrize("code", ["AccessDenied", "SignatureDoesNotMatch", "NoSuchBucket"])
def test_a_refused_retention_check_is_reported_by_its_own_code(code: str) -> None:
    """Only "no Object Lock configuration" means an unprotected bucket; any other
    refusal is that refusal."""

    class Refusing(BucketSettings):
        def get_object_lock_configuration(self, **_: object) -> dict[str, Any]:
            raise client_error("".join(code), 403)  # a fresh string, not the literal

    store = store_with(Refusing(ENABLED, {}), Retention("GOVERNANCE", 1))
    with pytest.raises(StoreError) as raised:
        store._check_retention()
    assert raised.value.code == code


def test_a_store_opened_before_any_credentials_exist_fails_each_write_until_reconnected(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Credentials can arrive after start (a role's token file): the store opens,
    and every write fails, retryably, naming why."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    session = boto3.session.Session(region_name="eu-west-1")
    store = S3Store(S3Options(bucket="archive"), session=session)
    with pytest.raises(StoreError) as raised:
        store.put("a", BODY)
    assert (raised.value.code, raised.value.kind) == ("NoCredentialsError", ErrorKind.TRANSIENT)
