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


def go_notecheck(tmp_path: Path) -> Path:
    """tests/go/notecheck built with Debian's Go and golang.org/x/mod (GOPATH mode)."""
    import shutil
    import subprocess

    go = shutil.which("go")
    if go is None or not Path("/usr/share/gocode/src/golang.org/x/mod/sumdb/note").exists():
        pytest.skip(
            "needs Debian's golang-go and golang-golang-x-mod-dev (make test installs them)"
        )
    out = tmp_path / "notecheck"
    source = Path(__file__).resolve().parents[1] / "go" / "notecheck"
    env = {"GO111MODULE": "off", "GOPATH": "/usr/share/gocode", "PATH": "/usr/bin:/bin",
           "GOCACHE": str(tmp_path / "gocache"), "HOME": str(tmp_path)}  # fmt: skip
    built = subprocess.run([go, "build", "-o", str(out), "."], cwd=source, env=env,
                           capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert built.returncode == 0, built.stderr
    return out


def test_each_sealed_head_gets_a_checkpoint_that_go_s_note_package_verifies(
    seaweed: SeaweedFS, s3: S3Client, tmp_path: Path
) -> None:
    import subprocess

    from cryptography.hazmat.primitives import serialization

    from msgarchive_server.domain.manifests import merkle, notes
    from msgarchive_server.domain.manifests.headlog import HeadLog, checkpoint_key

    requests = [make() for make in samples.REQUESTS.values()]
    archive = signed_archive(seaweed, tmp_path / "journal", "GOVERNANCE", requests)
    origin = f"{archive.bucket}/{PREFIX}_msgarchive/manifests/pod-1"
    public = archive.key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    vkey = notes.vkey(origin, notes.ED25519, public)
    notecheck = go_notecheck(tmp_path)
    heads: list[bytes] = []
    for size, hour in enumerate(archive.hours, start=1):
        head_key = hour_keys(PREFIX, "pod-1", hour)[1]
        heads.append(s3.get_object(Bucket=archive.bucket, Key=head_key)["Body"].read())
        key = checkpoint_key(head_key)
        stored = s3.get_object(Bucket=archive.bucket, Key=key)
        assert stored["ContentType"] == "text/plain; charset=utf-8"
        text = stored["Body"].read()
        checkpoint = notes.checkpoint_of(notes.parse(text.decode()))
        root = merkle.root([merkle.leaf_hash(h) for h in heads])
        assert checkpoint == notes.Checkpoint(origin, size, root)
        (tmp_path / "checkpoint").write_bytes(text)
        check = [str(notecheck), str(tmp_path / "checkpoint"), vkey]
        checked = subprocess.run(check, capture_output=True, text=True, timeout=60, check=False)
        assert checked.returncode == 0, checked.stderr
        assert checked.stdout == checkpoint.text()
        forged = text.replace(f"\n{size}\n".encode(), f"\n{size + 1}\n".encode(), 1)
        assert forged != text
        (tmp_path / "checkpoint").write_bytes(forged)
        tampered = subprocess.run(check, capture_output=True, text=True, timeout=60, check=False)
        assert tampered.returncode == 1
    # The log kept in the journal, and the same log rebuilt from the store.
    journal_log = HeadLog(next((tmp_path / "journal").rglob("log.txt")))
    rebuilt = HeadLog(tmp_path / "rebuilt.txt")
    rebuilt.rebuild(archive.store, hour_keys(PREFIX, "pod-1", archive.hours[-1])[1])
    assert rebuilt.keys == journal_log.keys
    assert rebuilt.root() == journal_log.root() == root
