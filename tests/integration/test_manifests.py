"""Sealing manifests into a real store (SeaweedFS), with the copies' retention."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from msgarchive_server.domain.manifests import parquet
from msgarchive_server.domain.manifests.heads import verify
from msgarchive_server.domain.manifests.sealer import hour_keys
from tests import samples
from tests.integration.conftest import PREFIX, signed_archive
from tests.seaweed import SeaweedFS

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.integration


def test_an_hour_of_archives_is_sealed_into_the_locked_bucket(
    seaweed: SeaweedFS, s3: S3Client, tmp_path: Path
) -> None:
    requests = [make() for make in samples.REQUESTS.values()]
    archive = signed_archive(seaweed, tmp_path, "COMPLIANCE", requests)
    bucket = archive.bucket
    listed = {}
    for hour in archive.hours:
        manifest_key, head_key = hour_keys(PREFIX, "pod-1", hour)
        manifest = s3.get_object(Bucket=bucket, Key=manifest_key)["Body"].read()
        stored_head = s3.get_object(Bucket=bucket, Key=head_key)["Body"].read()
        fields = verify(stored_head, archive.key.public_key())
        assert fields is not None
        assert fields["manifest"]["sha256"] == hashlib.sha256(manifest).hexdigest()
        assert json.loads(stored_head)["bucket"] == bucket
        listed.update({e.key: e for e in parquet.decode(manifest)})
        for key_, kind in ((manifest_key, "application/vnd.apache.parquet"),
                           (head_key, "application/json")):  # fmt: skip
            head = s3.head_object(Bucket=bucket, Key=key_)
            assert head["ObjectLockMode"] == "COMPLIANCE"  # locked like the copies
            assert head["ContentType"] == kind
    assert sorted(listed) == sorted(archive.acked)
    for key in archive.acked:
        entry, head = listed[key], s3.head_object(Bucket=bucket, Key=key)
        assert (entry.version_id, entry.e_tag) == (head["VersionId"], head["ETag"].strip('"'))
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert entry.sha256 == hashlib.sha256(body).hexdigest()
        assert entry.object_lock_mode == "COMPLIANCE"
