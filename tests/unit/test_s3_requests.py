"""What the S3 store sends and how it reads errors, with botocore's Stubber.

SeaweedFS does not do aws:kms, so the KMS request is checked here; the
integration suite covers the rest against a real server.
"""

from __future__ import annotations

import base64
import hashlib

import boto3
import pytest
from botocore.exceptions import ClientError, ConnectTimeoutError
from botocore.stub import Stubber

from msgarchive_server.stores import ErrorKind
from msgarchive_server.stores.s3 import CONTENT_TYPE, S3Options, S3Store, classify

BODY = b"copy"
MD5 = hashlib.md5(BODY, usedforsecurity=False).digest()


def test_kms_encryption_is_requested_with_the_key_id() -> None:
    client = boto3.client(
        "s3", region_name="eu-west-1", aws_access_key_id="a", aws_secret_access_key="b"
    )
    store = S3Store(
        S3Options(bucket="archive-bucket", sse="aws:kms", sse_kms_key_id="alias/archive"),
        client=client,
    )
    with Stubber(client) as stub:
        stub.add_response(
            "put_object",
            {"ETag": '"kms-etag"', "VersionId": "v7"},
            {
                "Bucket": "archive-bucket",
                "Key": "k.json.lz4",
                "Body": BODY,
                "ContentMD5": base64.b64encode(MD5).decode(),
                "ContentType": CONTENT_TYPE,
                "IfNoneMatch": "*",
                "ServerSideEncryption": "aws:kms",
                "SSEKMSKeyId": "alias/archive",
            },
        )
        result = store.put("k.json.lz4", BODY, MD5)
        stub.assert_no_pending_responses()
    assert (result.etag, result.version_id, result.already_existed) == ("kms-etag", "v7", False)


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
        ("AccessDenied", 403, ErrorKind.TRANSIENT),
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
