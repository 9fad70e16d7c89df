"""Legal holds through the manifests, and their signed, chained log, on SeaweedFS."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import serialization

from msgarchive_server.domain.manifests.signed_log import HOLDS_ROOT
from tests.integration.conftest import PREFIX, Archive
from tests.seaweed import SeaweedFS

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.integration


def hold(
    archive: Archive, seaweed: SeaweedFS, key_file: Path, action: str, *selection: str
) -> list[str]:
    done = subprocess.run(
        [
            sys.executable, "-m", "msgarchive_server", "hold", action,
            f"s3://{archive.bucket}/acme", *selection, "--reason=dispute 4711",
            f"--signing-key={key_file}", f"--s3-endpoint-url={seaweed.endpoint}",
        ],
        capture_output=True, text=True, env=seaweed.env, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return [line.split(" ")[0] for line in done.stdout.splitlines()]


def test_a_hold_follows_the_selection_blocks_deletion_and_is_logged(
    archive: Archive, seaweed: SeaweedFS, s3: S3Client, tmp_path: Path
) -> None:
    key_file = tmp_path / "signing.pem"
    key_file.write_bytes(
        archive.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    email = next(k for k in archive.acked if "/Email/" in k)
    held = hold(
        archive, seaweed, key_file, "on", "--campaign-id=1722529032", "--channel=email",
        "--recipient= Jane.Doe@Example.com",
    )  # fmt: skip
    assert held == [email]  # the one copy the selection names
    version = s3.head_object(Bucket=archive.bucket, Key=email)["VersionId"]
    assert (
        s3.get_object_legal_hold(Bucket=archive.bucket, Key=email, VersionId=version)["LegalHold"][
            "Status"
        ]
        == "ON"
    )
    others = [k for k in archive.acked if k != email]
    for key in others:
        assert (
            s3.head_object(Bucket=archive.bucket, Key=key).get("ObjectLockLegalHoldStatus") != "ON"
        )
    with pytest.raises(ClientError):  # not even with governance bypassed
        s3.delete_object(
            Bucket=archive.bucket, Key=email, VersionId=version, BypassGovernanceRetention=True
        )

    hold(archive, seaweed, key_file, "off", "--campaign-id=1722529032", "--channel=email")
    assert s3.head_object(Bucket=archive.bucket, Key=email).get("ObjectLockLegalHoldStatus") != "ON"

    records = sorted(
        item["Key"]
        for item in s3.list_objects_v2(Bucket=archive.bucket, Prefix=f"{PREFIX}{HOLDS_ROOT}/")[
            "Contents"
        ]
    )
    first, second = (
        json.loads(s3.get_object(Bucket=archive.bucket, Key=k)["Body"].read()) for k in records
    )
    assert (first["action"], first["sequence"], first["previous"]) == ("hold_on", 1, None)
    assert first["copies"] == [{"key": email, "version_id": version}]
    assert first["reason"] == "dispute 4711"
    assert (second["action"], second["previous"]["key"]) == ("hold_off", records[0])
    assert archive.findings() == []  # the log verifies with the archive

    s3.put_object(Bucket=archive.bucket, Key=records[0], Body=b'{"edited": true}')
    assert [(f.kind, f.key) for f in archive.findings()] == [
        ("hold_log_broken", records[0]),
        ("hold_log_broken", records[1]),  # it no longer links to what is there
    ]
