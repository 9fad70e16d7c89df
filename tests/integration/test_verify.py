"""`verify` against SeaweedFS: an untouched archive verifies clean, and each way of
tampering with it is reported with the right kind and key."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from msgarchive_server.domain.manifests.heads import Ed25519FileSigner
from msgarchive_server.domain.manifests.sealer import hour_keys
from msgarchive_server.domain.manifests.verify import Finding, Verifier
from tests.integration.conftest import PREFIX, Archive, bypass_delete, rebuild_with_the_real_key
from tests.seaweed import SeaweedFS

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.integration


def kinds(findings: list[Finding]) -> list[tuple[str, str]]:
    return sorted((f.kind, f.key) for f in findings)


def test_an_untouched_archive_verifies_clean(archive: Archive) -> None:
    verifier = Verifier(archive.store, archive.key.public_key(), deep=True)
    assert list(verifier.run()) == []
    progress = verifier.progress
    assert (progress.heads, progress.entries, progress.versions) == (2, 3, 3)
    assert archive.findings() == []


def test_a_deleted_copy_is_missing(archive: Archive, s3: S3Client) -> None:
    bypass_delete(s3, archive.bucket, archive.acked[0])
    assert kinds(archive.findings()) == [("copy_missing", archive.acked[0])]


def test_a_copy_hidden_by_a_delete_marker_is_missing(archive: Archive, s3: S3Client) -> None:
    s3.delete_object(Bucket=archive.bucket, Key=archive.acked[1])  # allowed: adds a marker
    assert kinds(archive.findings()) == [("copy_missing", archive.acked[1])]


def test_a_copy_overwritten_as_a_new_version_is_altered(archive: Archive, s3: S3Client) -> None:
    s3.put_object(Bucket=archive.bucket, Key=archive.acked[2], Body=b"another story")
    assert kinds(archive.findings()) == [("copy_altered", archive.acked[2])]


def test_an_acked_version_deleted_under_a_newer_one_is_missing_and_altered(
    archive: Archive, s3: S3Client
) -> None:
    """Someone writes a new version over a copy, then deletes the acked version
    beneath it: the acked copy is gone (missing), and what is there is not it."""
    key = archive.acked[2]
    (acked,) = s3.list_object_versions(Bucket=archive.bucket, Prefix=key)["Versions"]
    s3.put_object(Bucket=archive.bucket, Key=key, Body=b"another story")
    s3.delete_object(Bucket=archive.bucket, Key=key, VersionId=acked["VersionId"],
                     BypassGovernanceRetention=True)  # fmt: skip
    assert kinds(archive.findings()) == [("copy_altered", key), ("copy_missing", key)]


def test_an_object_no_manifest_lists_is_unlisted(archive: Archive, s3: S3Client) -> None:
    stray = f"{PREFIX}sent_messages/Sms/202609/c/{'0' * 32}/{'1' * 64}.json.lz4"
    s3.put_object(Bucket=archive.bucket, Key=stray, Body=b"slipped in")
    assert kinds(archive.findings()) == [("copy_unlisted", stray)]


def test_an_edited_manifest_is_altered(archive: Archive, s3: S3Client) -> None:
    manifest_key, _ = hour_keys(PREFIX, "pod-1", archive.hours[0])
    s3.put_object(Bucket=archive.bucket, Key=manifest_key, Body=b"PAR1 not the manifest")
    found = kinds(archive.findings())
    assert ("manifest_altered", manifest_key) in found
    # Its copies are then listed by no manifest that verifies: shown, not hidden.
    assert {k for kind, k in found if kind == "copy_unlisted"} == set(archive.acked)


def test_a_removed_head_leaves_its_hour_missing(archive: Archive, s3: S3Client) -> None:
    _, head_key = hour_keys(PREFIX, "pod-1", archive.hours[0])
    bypass_delete(s3, archive.bucket, head_key)
    found = kinds(archive.findings())
    assert ("hour_missing", head_key) in found


def test_a_head_re_signed_with_another_key_is_unsigned(archive: Archive, s3: S3Client) -> None:
    _, head_key = hour_keys(PREFIX, "pod-1", archive.hours[1])
    original = json.loads(s3.get_object(Bucket=archive.bucket, Key=head_key)["Body"].read())
    forged = Ed25519FileSigner(Ed25519PrivateKey.generate())
    body = {k: v for k, v in original.items() if k != "signature"}
    body["public_key_sha256"] = forged.public_key_sha256
    import base64

    from msgarchive_server.domain.manifests.entries import canonical

    body["signature"] = base64.b64encode(forged.sign(canonical(body))).decode()
    s3.put_object(Bucket=archive.bucket, Key=head_key, Body=canonical(body))
    assert kinds(archive.findings()) == [("head_unsigned", head_key)]


def test_a_shortened_retention_is_under_locked(archive: Archive, s3: S3Client) -> None:
    version = s3.head_object(Bucket=archive.bucket, Key=archive.acked[0])["VersionId"]
    soon = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
    s3.put_object_retention(
        Bucket=archive.bucket,
        Key=archive.acked[0],
        VersionId=version,
        Retention={"Mode": "GOVERNANCE", "RetainUntilDate": soon},
        BypassGovernanceRetention=True,
    )
    assert kinds(archive.findings()) == [("copy_under_locked", archive.acked[0])]


def test_the_command_reports_as_json_and_exits_non_zero(
    archive: Archive, seaweed: SeaweedFS, s3: S3Client, tmp_path: Path
) -> None:
    public = archive.public_key_file(tmp_path)
    command = [
        sys.executable, "-m", "msgarchive_server", "verify", f"s3://{archive.bucket}/acme",
        f"--public-key={public}", f"--s3-endpoint-url={seaweed.endpoint}", "--json",
    ]  # fmt: skip
    env = {**seaweed.env}
    clean = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    assert (clean.returncode, clean.stdout) == (0, ""), clean.stderr
    assert "nothing wrong" in clean.stderr
    s3.delete_object(Bucket=archive.bucket, Key=archive.acked[0])
    dirty = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    assert dirty.returncode == 1
    (line,) = dirty.stdout.splitlines()
    assert json.loads(line) == {
        "kind": "copy_missing",
        "key": archive.acked[0],
        "detail": "a delete marker hides it",
    }


def test_a_copy_is_proven_and_the_proof_checked_with_the_public_key_alone(
    archive: Archive, seaweed: SeaweedFS, tmp_path: Path
) -> None:
    public = archive.public_key_file(tmp_path)
    base = [sys.executable, "-m", "msgarchive_server"]
    proved = subprocess.run(
        [*base, "prove", f"s3://{archive.bucket}/acme", archive.acked[1],
         f"--s3-endpoint-url={seaweed.endpoint}"],
        capture_output=True, text=True, env=seaweed.env, check=False,
    )  # fmt: skip
    assert proved.returncode == 0, proved.stderr
    proof = json.loads(proved.stdout)
    assert (proof["size"], json.loads(proof["leaf"])["key"]) == (3, archive.acked[1])

    def check(
        candidate: dict[str, object], key_file: Path = public
    ) -> subprocess.CompletedProcess[str]:
        path = tmp_path / "proof.json"
        path.write_text(json.dumps(candidate))
        return subprocess.run(
            [*base, "check-proof", str(path), f"--public-key={key_file}"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip

    held = check(proof)
    assert (held.returncode, held.stdout.strip()) == (
        0,
        f"proven: {archive.acked[1]} is in the signed manifest",
    )
    changed = dict(proof, leaf=proof["leaf"].replace('"size":', '"size":1'))
    assert "audit path does not lead" in check(changed).stderr
    forged = {**proof, "head": {**proof["head"], "count": 4}}
    assert "signature does not verify" in check(forged).stderr
    stranger = tmp_path / "stranger.pub"
    stranger.write_bytes(
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    assert check(proof, stranger).returncode == 1


def test_a_time_range_checks_its_hours_only(archive: Archive, s3: S3Client) -> None:
    first, second = archive.hours
    bypass_delete(s3, archive.bucket, archive.acked[0])  # listed in the first hour
    stray = f"{PREFIX}sent_messages/Sms/202609/c/{'0' * 32}/{'1' * 64}.json.lz4"
    s3.put_object(Bucket=archive.bucket, Key=stray, Body=b"slipped in")
    public = archive.key.public_key()
    only_first = Verifier(archive.store, public, since=first, until=first)
    assert kinds(list(only_first.run())) == [("copy_missing", archive.acked[0])]
    assert only_first.progress.heads == 1
    # The second hour alone: its head links to one outside the range, which is
    # no break, and it lists no copy; nothing else is judged.
    only_second = Verifier(archive.store, public, since=second)
    assert list(only_second.run()) == []
    assert only_second.progress.heads == 1


def test_a_chain_rebuilt_with_the_real_key_is_caught_by_a_checkpoint_kept_from_before(
    archive: Archive, s3: S3Client, tmp_path: Path
) -> None:
    from msgarchive_server.domain.manifests import notes
    from msgarchive_server.domain.manifests.headlog import checkpoint_key

    newest = checkpoint_key(hour_keys(PREFIX, "pod-1", archive.hours[-1])[1])
    kept = s3.get_object(Bucket=archive.bucket, Key=newest)["Body"].read().decode()
    trusted = [notes.parse(kept)]
    assert list(Verifier(archive.store, archive.key.public_key(), trusted=trusted).run()) == []
    rebuild_with_the_real_key(archive, s3, tmp_path)
    # Signatures, chain, manifests and store agree: without a checkpoint from
    # before, nothing is wrong.
    assert archive.findings() == []
    found = list(Verifier(archive.store, archive.key.public_key(), trusted=trusted).run())
    assert [(f.kind, f.key) for f in found] == [
        ("checkpoint_inconsistent", hour_keys(PREFIX, "pod-1", archive.hours[-1])[1])
    ]
    assert "rewritten" in found[0].detail


def test_a_checkpoint_that_is_not_the_logs_is_reported(
    archive: Archive, s3: S3Client, tmp_path: Path
) -> None:
    from msgarchive_server.domain.manifests import notes
    from msgarchive_server.domain.manifests.headlog import checkpoint_key

    key = checkpoint_key(hour_keys(PREFIX, "pod-1", archive.hours[0])[1])
    stored = s3.get_object(Bucket=archive.bucket, Key=key)["Body"].read().decode()
    checkpoint = notes.checkpoint_of(notes.parse(stored))
    forged = notes.Checkpoint(checkpoint.origin, checkpoint.size, bytes(32))
    raw = archive.key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    signed = str(notes.sign(forged.text(), checkpoint.origin, raw, archive.key.sign))
    s3.put_object(Bucket=archive.bucket, Key=key, Body=signed.encode())  # a newer version
    unsigned = notes.sign(forged.text(), checkpoint.origin, raw,
                          Ed25519PrivateKey.generate().sign)  # fmt: skip
    second = checkpoint_key(hour_keys(PREFIX, "pod-1", archive.hours[1])[1])
    s3.put_object(Bucket=archive.bucket, Key=second, Body=str(unsigned).encode())
    assert kinds(archive.findings()) == [("checkpoint_inconsistent", key),
                                         ("checkpoint_invalid", second)]  # fmt: skip
    other = notes.sign(notes.Checkpoint("elsewhere/log", 1, bytes(32)).text(), "elsewhere/log",
                       raw, archive.key.sign)  # fmt: skip
    found = list(Verifier(archive.store, archive.key.public_key(), trusted=[other]).run())
    assert ("checkpoint_inconsistent", "elsewhere/log") in kinds(found)


def test_a_trusted_checkpoint_that_is_no_checkpoint_of_the_key_is_refused_in_one_line(
    archive: Archive, seaweed: SeaweedFS, s3: S3Client, tmp_path: Path
) -> None:
    from msgarchive_server.domain.manifests.headlog import checkpoint_key

    public = archive.public_key_file(tmp_path)
    key = checkpoint_key(hour_keys(PREFIX, "pod-1", archive.hours[-1])[1])
    good = s3.get_object(Bucket=archive.bucket, Key=key)["Body"].read()
    files = {"good": good, "garbage": b"not a note\n", "other key": good[:-20] + b"A" * 19 + b"\n"}
    outcomes = {}
    for name, data in files.items():
        path = tmp_path / name.replace(" ", "-")
        path.write_bytes(data)
        done = subprocess.run(
            [sys.executable, "-m", "msgarchive_server", "verify", f"s3://{archive.bucket}/acme",
             f"--public-key={public}", f"--s3-endpoint-url={seaweed.endpoint}",
             f"--trusted-checkpoint={path}"],
            capture_output=True, text=True, env={**seaweed.env}, check=False,
        )  # fmt: skip
        outcomes[name] = done.returncode
        if done.returncode == 2:
            (line,) = done.stderr.strip().splitlines()
            assert line.startswith(f"msgarchive: error: --trusted-checkpoint {path}: ")
    assert outcomes == {"good": 0, "garbage": 2, "other key": 2}


def test_a_manifest_gone_from_under_its_head_is_altered(archive: Archive, s3: S3Client) -> None:
    """(The mutation run: the NoSuchObject path was never taken.)"""
    manifest_key, _ = hour_keys(PREFIX, "pod-1", archive.hours[1])
    bypass_delete(s3, archive.bucket, manifest_key)
    found = archive.findings()
    assert [(f.kind, f.key, f.detail) for f in found] == [
        ("manifest_altered", manifest_key, "the manifest the head names is gone")
    ]


def test_every_problem_is_reported_not_only_the_first(archive: Archive, s3: S3Client) -> None:
    """Several copies missing and altered at once: each is named."""
    for key in archive.acked:
        bypass_delete(s3, archive.bucket, key)
    for key in archive.acked[:2]:
        s3.put_object(Bucket=archive.bucket, Key=key, Body=b"written over")
    found = kinds(archive.findings())
    assert found == sorted(
        [("copy_missing", k) for k in archive.acked]
        + [("copy_altered", k) for k in archive.acked[:2]]
    )


def test_witnesses_cosign_the_chain_and_will_not_cosign_it_rebuilt(
    seaweed: SeaweedFS, s3: S3Client, tmp_path: Path
) -> None:
    from msgarchive_server.domain.archive import Archiver
    from msgarchive_server.domain.manifests import notes
    from msgarchive_server.domain.manifests.journal import Journal
    from msgarchive_server.domain.manifests.sealer import Sealer, origin_of
    from msgarchive_server.domain.manifests.witnesses import parse_witness
    from msgarchive_server.stores import Retention
    from tests import samples
    from tests.witness import LoopbackWitness

    bucket = seaweed.new_bucket(object_lock=True)
    seaweed.set_default_retention(bucket, "GOVERNANCE", days=1)
    store = seaweed.store(bucket, prefix=PREFIX, retention=Retention("GOVERNANCE", 1))
    key = Ed25519PrivateKey.generate()
    origin = origin_of(bucket, PREFIX, "pod-1")
    witnesses = [LoopbackWitness(f"witness.test/{n}", origin, key.public_key()) for n in "ab"]
    configured = [parse_witness(f"{w.url}={w.vkey}") for w in witnesses]
    keys = [notes.parse_vkey(w.vkey) for w in witnesses]
    try:
        now = [int(datetime.datetime.now(datetime.UTC).timestamp() * 1000)]
        journal = Journal(tmp_path / "journal", writer="w0")
        sealer = Sealer(store, journal, Ed25519FileSigner(key), "pod-1", clock_ms=lambda: now[0],
                        witnesses=configured)  # fmt: skip
        started = now[0]
        archiver = Archiver(store, journal=journal, clock_ms=lambda: started)
        acked = [archiver.archive(make()).key for make in list(samples.REQUESTS.values())[:3]]
        now[0] = (now[0] // 3600_000) * 3600_000 + 2 * 3600_000 + 5 * 60_000
        hours = sealer.seal_due()
        journal.close()
        archive = Archive(bucket, store, key, acked, hours)

        def verify(quorum: int = 0) -> list[tuple[str, str]]:
            found = Verifier(store, key.public_key(), witness_keys=keys, witness_quorum=quorum)
            return kinds(list(found.run()))

        assert verify() == []
        assert [w.latest[0] for w in witnesses] == [2, 2]
        # The key's holder rebuilds the chain without a copy, and asks the same
        # witnesses: they saw the first tree, and refuse the second.
        rebuild_with_the_real_key(archive, s3, tmp_path, witnesses=configured)
        assert archive.findings() == []  # no signature or link is wrong
        newest = hour_keys(PREFIX, "pod-1", hours[-1])[1].replace("head", "checkpoint")
        newest = newest.removesuffix(".json") + ".txt"
        assert verify() == [("checkpoint_unwitnessed", newest)]
        assert verify(quorum=1) == [("checkpoint_unwitnessed", newest)]
        assert [w.latest[0] for w in witnesses] == [2, 2]  # neither took the rebuilt tree
    finally:
        for witness in witnesses:
            witness.stop()


def test_a_copy_gone_between_the_listing_and_its_read_is_missing(
    archive: Archive, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The listing names the version; by the time verify reads it (to check
    its lock), it is gone: missing, not a crash."""
    from msgarchive_server.stores import NoSuchObject

    gone = archive.acked[1]
    read = archive.store.get_version

    def get_version(key: str, version_id: str) -> Any:
        if key == gone:
            raise NoSuchObject(key)
        return read(key, version_id)

    monkeypatch.setattr(archive.store, "get_version", get_version)
    found = archive.findings()
    assert kinds(found) == [("copy_missing", gone)]
    assert "is gone" in found[0].detail
