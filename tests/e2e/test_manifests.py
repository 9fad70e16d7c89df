"""Manifests end to end: every ack is journaled before it is given, through kill -9."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from msgarchive import ArchiveClient
from tests import samples
from tests.seaweed import SeaweedFS
from tests.sidecar import s3_sidecar

pytestmark = pytest.mark.e2e


def journaled_keys(directory: Path) -> list[str]:
    """The keys in the journal files, read as a stranger would: JSON lines, then
    zero padding (a file is cut to its lines only when its process closes it)."""
    keys = []
    for path in directory.rglob("*.jsonl"):
        for line in path.read_bytes().rstrip(b"\0").splitlines():
            keys.append(json.loads(line)["key"])
    return sorted(keys)


def test_every_ack_is_journaled_and_survives_kill_9(
    seaweed: SeaweedFS, bucket: str, tmp_path: Path
) -> None:
    key_file = tmp_path / "signing.pem"
    made = subprocess.run(
        [sys.executable, "-m", "msgarchive_server", "manifest-key", str(key_file)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith("-----BEGIN PUBLIC KEY-----")
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    journal = tmp_path / "journal"
    flags = (f"--manifests-dir={journal}", f"--manifest-signing-key={key_file}")

    sidecar = s3_sidecar(bucket, seaweed.endpoint, seaweed.env, *flags)
    with ArchiveClient(sidecar.address) as client:
        first = [client.archive(samples.sms_request(created_at_ms=n)).key for n in range(1, 21)]
    assert sidecar.stop(signal.SIGKILL) == -signal.SIGKILL
    assert journaled_keys(journal) == sorted(first)  # on disk before each ack

    again = s3_sidecar(bucket, seaweed.endpoint, seaweed.env, *flags)
    try:
        with ArchiveClient(again.address) as client:
            retried = client.archive(samples.sms_request(created_at_ms=1))
            later = client.archive(samples.email_request()).key
    finally:
        assert again.stop() == 0
    assert retried.already_archived
    # A retried archive is journaled again (an ack is an ack); a manifest lists
    # each copy once (tests/unit/test_manifests.py).
    assert journaled_keys(journal) == sorted([*first, retried.key, later])
