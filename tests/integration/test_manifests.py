"""Sealing manifests into a real store (SeaweedFS), with the copies' retention."""

from __future__ import annotations

import datetime
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from msgarchive_server.domain.archive import Archiver
from msgarchive_server.domain.manifests import parquet
from msgarchive_server.domain.manifests.heads import Ed25519FileSigner, verify
from msgarchive_server.domain.manifests.journal import Journal
from msgarchive_server.domain.manifests.sealer import Sealer, hour_keys
from msgarchive_server.stores import Retention
from tests import samples
from tests.seaweed import SeaweedFS

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.integration


def test_an_hour_of_archives_is_sealed_into_the_locked_bucket(
    seaweed: SeaweedFS, s3: S3Client, tmp_path: Path
) -> None:
    bucket = seaweed.new_bucket(object_lock=True)
    seaweed.set_default_retention(bucket, "COMPLIANCE", days=1)
    store = seaweed.store(bucket, prefix="acme/", retention=Retention("COMPLIANCE", 1))
    store.probe()
    now = [int(datetime.datetime.now(datetime.UTC).timestamp() * 1000)]
    journal = Journal(tmp_path, writer="w0")
    key = Ed25519PrivateKey.generate()
    sealer = Sealer(store, journal, Ed25519FileSigner(key), "pod-1", clock_ms=lambda: now[0])
    started = now[0]  # every ack in one hour, at a real time
    archiver = Archiver(store, journal=journal, clock_ms=lambda: started)
    acks = [archiver.archive(make()) for make in samples.REQUESTS.values()]

    hour_ms = 3600 * 1000
    # Two hours on, whatever the minute now: the archiving hour (and the next,
    # should the archives have straddled its end) are over, and their grace.
    now[0] = (now[0] // hour_ms) * hour_ms + 2 * hour_ms + 5 * 60 * 1000
    listed = {}
    for hour in sealer.seal_due():
        manifest_key, head_key = hour_keys("acme/", "pod-1", hour)
        manifest = s3.get_object(Bucket=bucket, Key=manifest_key)["Body"].read()
        stored_head = s3.get_object(Bucket=bucket, Key=head_key)["Body"].read()
        fields = verify(stored_head, key.public_key())
        assert fields is not None
        assert fields["manifest"]["sha256"] == hashlib.sha256(manifest).hexdigest()
        assert json.loads(stored_head)["bucket"] == bucket
        listed.update({e.key: e for e in parquet.decode(manifest)})
        for key_, kind in ((manifest_key, "application/vnd.apache.parquet"),
                           (head_key, "application/json")):  # fmt: skip
            head = s3.head_object(Bucket=bucket, Key=key_)
            assert head["ObjectLockMode"] == "COMPLIANCE"  # locked like the copies
            assert head["ContentType"] == kind
    assert sorted(listed) == sorted(ack.key for ack in acks)
    for ack in acks:
        entry, head = listed[ack.key], s3.head_object(Bucket=bucket, Key=ack.key)
        assert (entry.version_id, entry.e_tag) == (head["VersionId"], head["ETag"].strip('"'))
        body = s3.get_object(Bucket=bucket, Key=ack.key)["Body"].read()
        assert entry.sha256 == hashlib.sha256(body).hexdigest()
        assert entry.object_lock_mode == "COMPLIANCE"
