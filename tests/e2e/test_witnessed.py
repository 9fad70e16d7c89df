"""The sidecar with witnesses and a time-stamping authority, end to end: it
archives against SeaweedFS, and at its stop seals the hour; the checkpoint is
cosigned by both witnesses and dated by OpenSSL's TSA, and `msgarchive
verify` with their keys and the TSA's CA finds nothing wrong. With a witness
that refuses and a TSA that fails, every message is still acknowledged and the
hour still sealed, and verify names what is missing."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from msgarchive import ArchiveClient
from msgarchive_server.domain.manifests.sealer import origin_of
from tests import samples
from tests.seaweed import SeaweedFS, keys_in
from tests.sidecar import manifest_key_pair, s3_sidecar
from tests.tsa import LoopbackTSA
from tests.witness import LoopbackWitness

pytestmark = pytest.mark.e2e

WRITER = "pod-w"


@pytest.fixture
def tsa() -> Iterator[LoopbackTSA]:
    running = LoopbackTSA()
    yield running
    running.stop()


def run(seaweed: SeaweedFS, tmp_path: Path, tsa: LoopbackTSA, witness_mode: str) -> tuple[
    str, Path, list[LoopbackWitness], list[dict[str, object]]
]:  # fmt: skip
    """Archive every sample through a sidecar with two witnesses and the TSA,
    then stop it: (bucket, the public key file, the witnesses, its log lines)."""
    bucket = seaweed.new_bucket(object_lock=True)
    (tmp_path / "keys").mkdir()
    private, public = manifest_key_pair(tmp_path / "keys")
    key = serialization.load_pem_public_key(public.read_bytes())
    assert isinstance(key, Ed25519PublicKey)
    origin = origin_of(bucket, "", WRITER)
    witnesses = [LoopbackWitness(f"witness.test/{n}", origin, key) for n in "ab"]
    witnesses[0].mode = witness_mode
    try:
        sidecar = s3_sidecar(
            bucket, seaweed.endpoint, seaweed.env,
            f"--manifests-dir={tmp_path / 'journal'}", f"--manifest-signing-key={private}",
            f"--manifest-writer={WRITER}", f"--timestamp-url={tsa.url}",
            *(f"--witness={w.url}={w.vkey}" for w in witnesses),
        )  # fmt: skip
        try:
            with ArchiveClient(sidecar.address) as client:
                acked = [client.archive(make()).key for make in samples.REQUESTS.values()]
        finally:
            assert sidecar.stop() == 0  # sealed through the current hour on the way out
    except BaseException:
        for witness in witnesses:
            witness.stop()
        raise
    assert sorted(acked) == sorted(k for k in keys_in(seaweed.client(), bucket)
                                   if k.startswith("sent_messages/"))  # fmt: skip
    return bucket, public, witnesses, sidecar.lines


def verify(
    seaweed: SeaweedFS, bucket: str, public: Path, witnesses: list[LoopbackWitness], ca: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "msgarchive_server", "verify", f"s3://{bucket}",
         f"--public-key={public}", f"--s3-endpoint-url={seaweed.endpoint}", f"--tsa-ca={ca}",
         *(f"--witness-key={w.vkey}" for w in witnesses)],
        capture_output=True, text=True, env={**seaweed.env}, timeout=300, check=False,
    )  # fmt: skip


def test_a_witnessed_and_timestamped_archive_verifies(
    seaweed: SeaweedFS, tmp_path: Path, tsa: LoopbackTSA
) -> None:
    bucket, public, witnesses, lines = run(seaweed, tmp_path, tsa, witness_mode="")
    try:
        events = [line.get("event") for line in lines]
        assert "checkpoint witnessed" in events
        assert "checkpoint timestamped" in events
        names = {k.rsplit("/", 1)[1] for k in keys_in(seaweed.client(), bucket)}
        assert {"checkpoint.txt", "checkpoint.cosigned.txt", "checkpoint.tsr"} <= names
        checked = verify(seaweed, bucket, public, witnesses, tsa.ca)
        assert (checked.returncode, checked.stdout) == (0, ""), checked.stderr
    finally:
        for witness in witnesses:
            witness.stop()


def test_a_refusing_witness_and_a_failing_tsa_hold_up_no_ack_and_no_seal(
    seaweed: SeaweedFS, tmp_path: Path, tsa: LoopbackTSA
) -> None:
    tsa.mode = "error"
    bucket, public, witnesses, lines = run(seaweed, tmp_path, tsa, witness_mode="forbidden")
    try:
        refused = {line["event"]: line for line in lines if "refused" in str(line.get("event"))}
        assert refused["timestamp refused"]["why"] == "500: the signing module is offline"
        assert str(refused["witness refused"]["why"]).startswith("403")
        assert any(line.get("event") == "hour sealed" for line in lines)
        checked = verify(seaweed, bucket, public, witnesses, tsa.ca)
        assert checked.returncode == 1
        kinds = sorted(line.split()[0] for line in checked.stdout.splitlines())
        assert kinds == ["checkpoint_unwitnessed", "timestamp_missing"]
    finally:
        for witness in witnesses:
            witness.stop()
