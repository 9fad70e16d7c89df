"""The credential circuit end to end, against SeaweedFS's own refusals: a
sidecar whose bucket is missing, or whose key the store refuses, reports
NOT_SERVING and fails fast, then recovers without a restart once the bucket
exists or the store accepts the key."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import grpc
import pytest

from msgarchive import ArchiveClient, ArchiveUnavailable
from tests import samples
from tests.seaweed import (
    ACCESS_KEY,
    READER_KEY,
    READER_SECRET,
    REGION,
    SECRET_KEY,
    SeaweedFS,
    keys_in,
)
from tests.sidecar import SidecarProcess, health, s3_sidecar, wait_until_serving

pytestmark = pytest.mark.e2e


def credentials_file(path: Path, key: str, secret: str) -> dict[str, str]:
    path.write_text(f"[default]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n")
    return {"AWS_SHARED_CREDENTIALS_FILE": str(path), "AWS_REGION": REGION}


def sidecar_for(seaweed: SeaweedFS, bucket: str, env: dict[str, str]) -> SidecarProcess:
    return s3_sidecar(bucket, seaweed.endpoint, env, "--probe-max-interval=0.5")


def assert_fails_fast(address: str, store_error: str) -> None:
    with ArchiveClient(address) as client, pytest.raises(ArchiveUnavailable) as raised:
        client.archive(samples.sms_request())
    assert raised.value.code is grpc.StatusCode.FAILED_PRECONDITION
    assert raised.value.reason == "ARCHIVE_UNAVAILABLE"
    assert raised.value.metadata["store_error"] == store_error


def test_a_missing_bucket_is_not_serving_until_it_is_created(seaweed: SeaweedFS) -> None:
    bucket = f"later-{uuid.uuid4().hex[:12]}"
    sidecar = sidecar_for(seaweed, bucket, seaweed.env)
    try:
        assert sidecar.serving["archiving_available"] is False
        assert health(sidecar.address) == "NOT_SERVING"
        alive = subprocess.run(
            [sys.executable, "-m", "msgarchive_server", "health", "--alive",
             "--address", sidecar.address],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert (alive.returncode, alive.stdout.strip()) == (0, "NOT_SERVING")
        assert_fails_fast(sidecar.address, "NoSuchBucket")
        seaweed.client().create_bucket(Bucket=bucket)
        wait_until_serving(sidecar.address)
        with ArchiveClient(sidecar.address) as client:
            ack = client.archive(samples.sms_request())
        assert keys_in(seaweed.client(), bucket) == [ack.key]
    finally:
        sidecar.kill()


@pytest.mark.parametrize(
    ("key", "secret", "store_error"),
    [
        (ACCESS_KEY, "not-the-secret", "SignatureDoesNotMatch"),
        ("no-such-key", "whatever", "InvalidAccessKeyId"),
        (READER_KEY, READER_SECRET, "AccessDenied"),  # a real key that may not write
    ],
)
def test_refused_credentials_recover_when_the_store_accepts_them(
    seaweed: SeaweedFS, bucket: str, tmp_path: Path, key: str, secret: str, store_error: str
) -> None:
    credentials = tmp_path / "credentials"
    sidecar = sidecar_for(seaweed, bucket, credentials_file(credentials, key, secret))
    try:
        assert health(sidecar.address) == "NOT_SERVING"
        assert_fails_fast(sidecar.address, store_error)
        credentials_file(credentials, ACCESS_KEY, SECRET_KEY)  # rotated: read afresh
        wait_until_serving(sidecar.address)
        with ArchiveClient(sidecar.address) as client:
            ack = client.archive(samples.email_request())
        assert keys_in(seaweed.client(), bucket) == [ack.key]
    finally:
        sidecar.kill()
