"""Fixtures of the integration suite: an archive of sealed, signed manifests."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from msgarchive.v1 import archive_service_pb2 as pb
from msgarchive_server.domain.archive import Archiver
from msgarchive_server.domain.manifests.heads import Ed25519FileSigner
from msgarchive_server.domain.manifests.journal import Journal
from msgarchive_server.domain.manifests.sealer import Sealer, hour_keys
from msgarchive_server.domain.manifests.verify import Finding, Verifier
from msgarchive_server.stores import Retention
from msgarchive_server.stores.s3 import S3Store
from tests import samples
from tests.seaweed import SeaweedFS

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

HOUR_MS = 3600 * 1000
PREFIX = "acme/"


@dataclass
class Archive:
    """A bucket with two sealed hours of a sidecar's work: three copies, then none."""

    bucket: str
    store: S3Store
    key: Ed25519PrivateKey
    acked: list[str]
    hours: list[datetime.datetime]

    def findings(self, deep: bool = False) -> list[Finding]:
        return list(Verifier(self.store, self.key.public_key(), deep=deep).run())

    def public_key_file(self, directory: Path) -> Path:
        """The manifest public key, as PEM in `directory`, for the commands."""
        from cryptography.hazmat.primitives import serialization

        public = directory / "heads.pub"
        public.write_bytes(
            self.key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        return public


def signed_archive(
    seaweed: SeaweedFS,
    journal_dir: Path,
    mode: Literal["GOVERNANCE", "COMPLIANCE"],
    requests: list[pb.ArchiveRequest],
) -> Archive:
    """`requests` archived under PREFIX into a fresh Object Lock bucket (retention
    `mode`, 1 day), journaled, and sealed: their hour, then an empty one."""
    bucket = seaweed.new_bucket(object_lock=True)
    seaweed.set_default_retention(bucket, mode, days=1)
    store = seaweed.store(bucket, prefix=PREFIX, retention=Retention(mode, 1))
    store.probe()
    now = [int(datetime.datetime.now(datetime.UTC).timestamp() * 1000)]
    journal = Journal(journal_dir, writer="w0")
    key = Ed25519PrivateKey.generate()
    sealer = Sealer(store, journal, Ed25519FileSigner(key), "pod-1", clock_ms=lambda: now[0])
    started = now[0]  # every ack in one hour, at a real time
    archiver = Archiver(store, journal=journal, clock_ms=lambda: started)
    acked = [archiver.archive(request).key for request in requests]
    # Two hours later whatever the minute now: the archiving hour, then an empty one.
    now[0] = (now[0] // HOUR_MS) * HOUR_MS + 2 * HOUR_MS + 5 * 60 * 1000
    hours = sealer.seal_due()
    assert len(hours) == 2
    return Archive(bucket, store, key, acked, hours)


@pytest.fixture
def archive(seaweed: SeaweedFS, tmp_path: Path) -> Archive:
    """Three copies under GOVERNANCE, which tests may bypass to tamper."""
    requests = [make() for make in list(samples.REQUESTS.values())[:3]]
    return signed_archive(seaweed, tmp_path, "GOVERNANCE", requests)


def bypass_delete(s3: S3Client, bucket: str, key: str) -> None:
    """Delete every version of `key`, as someone allowed to bypass governance could."""
    for version in s3.list_object_versions(Bucket=bucket, Prefix=key).get("Versions", []):
        s3.delete_object(
            Bucket=bucket, Key=key, VersionId=version["VersionId"], BypassGovernanceRetention=True
        )


def rebuild_with_the_real_key(
    archive: Archive,
    s3: S3Client,
    tmp_path: Path,
    witnesses: list[Any] | None = None,
    timestamper: Any = None,
) -> None:
    """The attack a signature cannot catch: whoever holds the manifest key and
    can bypass governance deletes a copy, then the whole chain, and seals the
    same hours again from a journal without that copy."""
    from msgarchive_server.domain.manifests import parquet

    first, _ = hour_keys(PREFIX, "pod-1", archive.hours[0])
    entries = parquet.decode(s3.get_object(Bucket=archive.bucket, Key=first)["Body"].read())
    bypass_delete(s3, archive.bucket, archive.acked[0])
    for listed in s3.list_object_versions(Bucket=archive.bucket,
                                          Prefix=f"{PREFIX}_msgarchive/")["Versions"]:  # fmt: skip
        s3.delete_object(Bucket=archive.bucket, Key=listed["Key"], VersionId=listed["VersionId"],
                         BypassGovernanceRetention=True)  # fmt: skip
    hour_ms = int(archive.hours[0].timestamp() * 1000)
    now = [hour_ms + 60_000]
    journal = Journal(tmp_path / "attacker", writer="w0")
    sealer = Sealer(archive.store, journal, Ed25519FileSigner(archive.key), "pod-1",
                    clock_ms=lambda: now[0], witnesses=witnesses,
                    timestamper=timestamper)  # fmt: skip
    for entry in entries:
        if entry.key != archive.acked[0]:
            journal.append(entry)
    now[0] = hour_ms + 2 * 3600_000 + 5 * 60_000
    assert len(sealer.seal_due()) == 2
    journal.close()
